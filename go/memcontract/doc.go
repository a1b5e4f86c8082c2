// Package memcontract implements the memcontract wire protocol for Go gRPC
// services, so that they interoperate with the Python memcontract middleware.
//
// Every process reports its memory state to its peers in gRPC metadata:
//
//	x-memory-usage          percent of capacity, e.g. "68.4%"
//	x-memory-capacity       capacity in MiB, e.g. "2048"
//	x-memory-contract       contract version, e.g. "v1.2" (omitted when empty)
//	x-memory-level          breach level, "0" ... "3"
//	x-memory-pressure-bin   serialized memcontract.v1.MemoryPressure
//	endpoint-load-metrics-bin  serialized xds.data.orca.v3.OrcaLoadReport (servers only)
//
// A service wires it like this (one Sampler per process: its actions set the
// runtime's process-wide GC settings):
//
//	c, err := memcontract.LoadContract("memory_contract.yaml", memcontract.WithModule("inventory"))
//	sampler := memcontract.NewSampler(c.Version, c.Module) // cgroup-aware capacity, GC levers
//	sampler.Start()
//	defer sampler.Stop()
//	mc := memcontract.NewServer(sampler, c.Module,
//		memcontract.WithServerMetricsProvider(cpuAndQPS), // the service's ORCA metrics, same report
//		memcontract.WithTrust(trusted))                    // whose x-memory-* count
//	s := grpc.NewServer(append(mc.ServerOptions(), theServicesOwnOptions...)...)
//	inventoryv1.RegisterInventoryServiceServer(mc.Registrar(s), impl)
//	memcontract.RegisterPressureServices(s, mc) // ORCA out of band, MemoryPressureService
//
//	client := memcontract.NewClient(sampler, memcontract.WithContractFastFail(c.Module))
//	conn, err := grpc.NewClient(target, append(creds, client.DialOptions()...)...)
//
// Client interceptors add the process's keys to every outgoing call and
// remember what each target reported in its trailers; while a target reports
// level 3, non-core calls to it fail fast locally for the remaining pushback
// (capped by WithMaxFailFast). Server interceptors expose a trusted caller's
// pressure to handlers (PeerPressureFromContext), add the server's keys to
// the trailers of every call (OK, errors, Unimplemented, requests that do not
// decode, shed), add memory, application utilization and call rates to the
// call's ORCA report (the service's metrics, the handler's from
// orca.CallMetricsRecorderFromContext and ours share one
// endpoint-load-metrics-bin; see Server.ServerMetrics) and, at level 3, shed non-core calls with
// codes.ResourceExhausted (in the transport, before decoding, with
// WithEarlyShed).
//
// The Sampler reads memory like Python's SystemProbe (capacity from the
// cgroup, v1 or v2, through /proc/self/cgroup and mountinfo and up the
// parents; the working set where the cgroup limit binds), runs the breach
// ladder with per-signal confirmation, and pulls Go's own levers: the soft
// memory limit at gc_trigger_ratio × capacity, and at level 3 GOGC 50
// (restored below level 3) and a collection that returns freed memory to
// the OS.
//
// Contracts are the same memory_contract.yaml files the Python side reads
// (LoadContract), validated with exactly the Python rules and messages (the
// shared corpus tests/vectors/contracts holds both loaders to it) into
// generated memcontractv1.ModuleContract messages with the Python defaults.
package memcontract
