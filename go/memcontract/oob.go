package memcontract

import (
	"maps"
	"time"

	v3orcapb "github.com/cncf/xds/go/xds/data/orca/v3"
	v3orcaservicepb "github.com/cncf/xds/go/xds/service/orca/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/orca"
)

// PressureServicesOption configures RegisterPressureServices.
type PressureServicesOption func(*pressureServicesOptions)

type pressureServicesOptions struct {
	minInterval time.Duration
}

// WithMinReportingInterval serves ORCA's OpenRcaService with d as the
// shortest report interval (a client asking for less gets d; asking for
// nothing gets d too), instead of grpc-go's orca.Register, which raises
// anything below 30 s to 30 s: a weighted_round_robin client with
// enableOobLoadReport then follows memory within a few of its own
// oobReportingPeriod, not 30 s. d must be positive.
func WithMinReportingInterval(d time.Duration) PressureServicesOption {
	return func(o *pressureServicesOptions) { o.minInterval = d }
}

// openRCA is OpenRcaService over a Server's ServerMetrics, reporting as
// often as the client asks, but not more often than minInterval.
type openRCA struct {
	v3orcaservicepb.UnimplementedOpenRcaServiceServer
	server      *Server
	minInterval time.Duration
}

func (o *openRCA) StreamCoreMetrics(req *v3orcaservicepb.OrcaLoadReportRequest, stream grpc.ServerStreamingServer[v3orcapb.OrcaLoadReport]) error {
	interval := o.minInterval
	if d := req.GetReportInterval(); d.IsValid() && d.AsDuration() > interval {
		interval = d.AsDuration()
	}
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		if err := stream.Send(loadReportOf(o.server.ServerMetrics())); err != nil {
			return err
		}
		select {
		case <-stream.Context().Done():
			return nil
		case <-ticker.C:
		}
	}
}

// loadReportOf is the OrcaLoadReport of sm, its unset fields (negative)
// left out, as grpc-go's own OpenRcaService sends them.
func loadReportOf(sm *orca.ServerMetrics) *v3orcapb.OrcaLoadReport {
	r := &v3orcapb.OrcaLoadReport{
		Utilization:  maps.Clone(sm.Utilization),
		RequestCost:  maps.Clone(sm.RequestCost),
		NamedMetrics: maps.Clone(sm.NamedMetrics),
	}
	if sm.CPUUtilization >= 0 {
		r.CpuUtilization = sm.CPUUtilization
	}
	if sm.MemUtilization >= 0 {
		r.MemUtilization = sm.MemUtilization
	}
	if sm.AppUtilization >= 0 {
		r.ApplicationUtilization = sm.AppUtilization
	}
	if sm.QPS >= 0 {
		r.RpsFractional = sm.QPS
	}
	if sm.EPS >= 0 {
		r.Eps = sm.EPS
	}
	return r
}
