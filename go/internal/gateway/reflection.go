package gateway

import (
	"os"
	"sort"

	"google.golang.org/grpc"
	"google.golang.org/grpc/reflection"
	v1reflectiongrpc "google.golang.org/grpc/reflection/grpc_reflection_v1"
	v1alphareflectiongrpc "google.golang.org/grpc/reflection/grpc_reflection_v1alpha"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
)

// descriptors are the services of the --descriptor-set files: with them the
// gateway answers server reflection itself (ghz and grpcurl ask for a
// method's file before calling it); without, reflection calls are forwarded
// like any other and the upstreams answer for themselves.
type descriptors struct {
	files    *protoregistry.Files
	services []string
	methods  int
}

// loadDescriptorSets reads FileDescriptorSet files (protoc -o FILE).
func loadDescriptorSets(paths []string) (*descriptors, error) {
	set := &descriptorpb.FileDescriptorSet{}
	seen := map[string]bool{}
	for _, path := range paths {
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, configErrorf("descriptor_sets: %s: cannot read: %v", path, err)
		}
		one := &descriptorpb.FileDescriptorSet{}
		if err := proto.Unmarshal(data, one); err != nil || len(one.GetFile()) == 0 {
			why := "no file in it"
			if err != nil {
				why = err.Error()
			}
			return nil, configErrorf("descriptor_sets: %s: not a FileDescriptorSet (protoc -o FILE): %s", path, why)
		}
		for _, f := range one.GetFile() {
			if !seen[f.GetName()] {
				seen[f.GetName()] = true
				set.File = append(set.File, f)
			}
		}
	}
	files, err := protodesc.NewFiles(set)
	if err != nil {
		return nil, configErrorf("descriptor_sets: not a complete FileDescriptorSet (protoc --include_imports -o FILE): %v", err)
	}
	d := &descriptors{files: files}
	files.RangeFiles(func(f protoreflect.FileDescriptor) bool {
		for i := 0; i < f.Services().Len(); i++ {
			s := f.Services().Get(i)
			d.services = append(d.services, string(s.FullName()))
			d.methods += s.Methods().Len()
		}
		return true
	})
	sort.Strings(d.services)
	return d, nil
}

// register serves reflection (v1 and v1alpha) from the descriptor sets, the
// gateway's own services resolved from the binary's registry.
func (d *descriptors) register(s *grpc.Server) {
	names := append([]string{"grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection",
		"grpc.reflection.v1alpha.ServerReflection"}, d.services...)
	opts := reflection.ServerOptions{
		Services:           serviceList(names),
		DescriptorResolver: resolvers{d.files, protoregistry.GlobalFiles},
		ExtensionResolver:  protoregistry.GlobalTypes,
	}
	v1reflectiongrpc.RegisterServerReflectionServer(s, reflection.NewServerV1(opts))
	v1alphareflectiongrpc.RegisterServerReflectionServer(s, reflection.NewServer(opts)) //nolint:staticcheck // ghz asks v1alpha
}

// serviceList lists services by name for reflection's list_services.
type serviceList []string

func (l serviceList) GetServiceInfo() map[string]grpc.ServiceInfo {
	out := make(map[string]grpc.ServiceInfo, len(l))
	for _, n := range l {
		out[n] = grpc.ServiceInfo{}
	}
	return out
}

// resolvers looks a descriptor up in each resolver in turn.
type resolvers []interface {
	FindFileByPath(string) (protoreflect.FileDescriptor, error)
	FindDescriptorByName(protoreflect.FullName) (protoreflect.Descriptor, error)
}

func (r resolvers) FindFileByPath(path string) (protoreflect.FileDescriptor, error) {
	var last error
	for _, one := range r {
		f, err := one.FindFileByPath(path)
		if err == nil {
			return f, nil
		}
		last = err
	}
	return nil, last
}

func (r resolvers) FindDescriptorByName(name protoreflect.FullName) (protoreflect.Descriptor, error) {
	var last error
	for _, one := range r {
		d, err := one.FindDescriptorByName(name)
		if err == nil {
			return d, nil
		}
		last = err
	}
	return nil, last
}
