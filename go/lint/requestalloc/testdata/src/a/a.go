package a

import (
	"bytes"
	"context"
	"errors"
	"strings"
)

type GetRequest struct {
	Size  int64
	Items []string
	Name  string
}

func (r *GetRequest) GetSize() int64 { return r.Size }

type GetResponse struct{ Data []byte }

type ListStream interface {
	Send(*GetResponse) error
	Context() context.Context
}

type UploadStream interface {
	Recv() (*GetRequest, error)
	SendAndClose(*GetResponse) error
	Context() context.Context
}

type Service struct{ limit int }

const maxSize = 1 << 20

func (s *Service) Get(ctx context.Context, req *GetRequest) (*GetResponse, error) {
	_ = make([]byte, req.Size)         // want `MC003: make\(\[\]byte, \.\.\.\) sized by request data \(req.Size\)`
	_ = make([]byte, 0, req.GetSize()) // want `MC003`
	n := int(req.GetSize()) * 2
	_ = make([]string, n) // want `MC003`
	m := len(req.Items)
	_ = make([]int64, m)             // want `MC003`
	_ = bytes.Repeat([]byte("x"), m) // want `MC003: bytes.Repeat sized by request data`
	_ = strings.Repeat(req.Name, n)  // want `MC003: strings.Repeat`
	for _, item := range req.Items {
		_ = make([]byte, len(item)) // want `MC003`
	}
	bounded := min(req.GetSize(), maxSize)
	_ = make([]byte, bounded)
	_ = make([]byte, min(int(req.Size), 4096))
	_ = make([]byte, min(int(req.Size), s.limit))
	_ = make([]byte, min(req.Size, req.GetSize())) // want `MC003`
	_ = make([]byte, 64)
	_ = make([]byte, s.limit)
	_ = make(map[string]int, req.Size) // maps are out of scope
	return &GetResponse{}, nil
}

func (s *Service) List(req *GetRequest, stream ListStream) error {
	buf := make([]byte, req.GetSize()) // want `MC003`
	return stream.Send(&GetResponse{Data: buf})
}

func (s *Service) Upload(stream UploadStream) error {
	total := int64(0)
	for {
		msg, err := stream.Recv()
		if err != nil {
			return err
		}
		_ = make([]byte, msg.Size) // want `MC003`
		total += msg.Size
		_ = make([]byte, 0, total) // want `MC003`
	}
}

func (s *Service) Checked(ctx context.Context, req *GetRequest) (*GetResponse, error) {
	n := req.GetSize()
	if n > maxSize {
		return nil, errors.New("too large")
	}
	_ = make([]byte, n)
	if !(req.Size <= maxSize) {
		panic("too large")
	}
	_ = make([]byte, req.Size)
	if len(req.Items) == 0 || len(req.Items) > maxSize {
		return nil, nil
	}
	_ = make([]string, len(req.Items))
	// checks that do not bound from above, or against request data: still reported
	if len(req.Name) < 1 {
		return nil, nil
	}
	_ = make([]byte, len(req.Name)) // want `MC003`
	m := req.GetSize()
	if m > int64(len(req.Name)) { // a bound from the request bounds nothing
		return nil, nil
	}
	_ = make([]byte, m) // want `MC003`
	if k := req.GetSize(); k > maxSize {
		_ = k // does not leave
	}
	_ = make([]byte, req.GetSize()*2) // want `MC003`
	return nil, nil
}

// Look-alikes: not handlers.

func Get(ctx context.Context, req *GetRequest) (*GetResponse, error) {
	_ = make([]byte, req.Size) // a function, not a method
	return nil, nil
}

func (s *Service) helper(req *GetRequest) []byte {
	return make([]byte, req.Size) // no error result: not a handler
}

func (s *Service) Sized(ctx context.Context, size int64) (*GetResponse, error) {
	return &GetResponse{Data: make([]byte, size)}, nil // second parameter is not a message
}

func (s *Service) Suppressed(ctx context.Context, req *GetRequest) (*GetResponse, error) {
	_ = make([]byte, req.Size) //memcontract:ignore MC003 checked by the caller's interceptor
	//memcontract:ignore MC001,MC003 the line above counts too
	_ = make([]byte, req.Size)
	_ = make([]byte, req.Size) //memcontract:ignore MC003 // want `MC003: .* needs a reason to suppress this`
	_ = make([]byte, req.Size) //memcontract:ignore MC001 wrong code // want `MC003`
	_ = make([]byte, 64)       //memcontract:ignore MC003 nothing to suppress // want `MC902: unused suppression: no MC003 finding`
	return nil, nil
}
