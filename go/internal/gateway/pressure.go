package gateway

// Every use of the library's wire codec is in this file, so that moving
// those helpers (ParseUsage, Decode, ...) only changes the lines here.

import (
	"strconv"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	memcontractv1 "github.com/memcontract/memcontract/go/gen/memcontract/v1"
	"github.com/memcontract/memcontract/go/internal"
	"github.com/memcontract/memcontract/go/memcontract"
)

// Pressure is an upstream's (or the gateway's own) memory state.
type Pressure = memcontract.Pressure

// Level 3 of the breach ladder: non-core calls are shed.
const levelCritical = memcontract.LevelCritical

// Metadata keys of the wire protocol the gateway reads or filters.
const (
	pressureBinKey   = memcontract.PressureBinKey
	usageKey         = memcontract.UsageKey
	levelKey         = memcontract.LevelKey
	loadReportKey    = memcontract.LoadReportKey
	retryPushbackKey = memcontract.RetryPushbackKey
	memoryKeyPrefix  = "x-memory-"
)

// report is what one call's end said about its upstream's pressure.
type report struct {
	pressure Pressure
	// pushback is the upstream's grpc-retry-pushback-ms, when it sent one
	// that is a number.
	pushback    time.Duration
	hasPushback bool
	// shed: the call was shed (a pushback came with it, a number or not;
	// from the status details, a RetryInfo).
	shed bool
}

// memoKey is what identifies a report without decoding it: upstreams
// resend the same keys until their sampler runs again.
func memoKey(trailer metadata.MD) string {
	if v := trailer[pressureBinKey]; len(v) > 0 {
		return v[len(v)-1]
	}
	u, l := trailer[usageKey], trailer[levelKey]
	if len(u) == 0 && len(l) == 0 {
		return ""
	}
	key := "t"
	if len(u) > 0 {
		key += u[len(u)-1]
	}
	if len(l) > 0 {
		key += "|" + l[len(l)-1]
	}
	return key
}

// readReport reads an upstream's pressure from a call's trailers (the -bin
// message or the text keys, as Python and hand-written peers send them) or,
// for a call the upstream shed in its transport, from the status details.
// ok is false when the call carried none.
func readReport(trailer metadata.MD, callErr error) (r report, ok bool) {
	p, ok, _ := memcontract.Decode(trailer)
	if v := trailer[retryPushbackKey]; len(v) > 0 {
		r.shed = true
		r.pushback, r.hasPushback = parsePushback(v[len(v)-1])
	}
	if !ok {
		p, ok, r.pushback, r.hasPushback = fromStatusDetails(callErr)
		r.shed = r.hasPushback
	}
	r.pressure = p
	return r, ok
}

// parsePushback reads grpc-retry-pushback-ms: nine digits at most, as the
// Python client reads it.
func parsePushback(v string) (time.Duration, bool) {
	ms, err := strconv.ParseUint(v, 10, 32)
	if err != nil || len(v) > 9 {
		return 0, false
	}
	return time.Duration(ms) * time.Millisecond, true
}

// fromStatusDetails reads the pressure and pushback a Go upstream put in the
// status details of a call it shed before reading it (WithEarlyShed).
func fromStatusDetails(err error) (p Pressure, ok bool, pushback time.Duration, hasPushback bool) {
	st, isStatus := status.FromError(err)
	if err == nil || !isStatus || st.Code() != codes.ResourceExhausted {
		return Pressure{}, false, 0, false
	}
	for _, d := range st.Details() {
		switch d := d.(type) {
		case *memcontractv1.MemoryPressure:
			if got, perr := pressureFromProto(d); perr == nil {
				p, ok = got, true
			}
		case *errdetails.RetryInfo:
			if dd := d.GetRetryDelay(); dd.IsValid() && dd.AsDuration() >= 0 {
				pushback, hasPushback = dd.AsDuration(), true
			}
		}
	}
	return p, ok, pushback, hasPushback
}

// The library's codec, shared through the module's internal package.
var (
	encodePairs       = internal.EncodePairs.(func(memcontract.Pressure) []string)
	pressureFromProto = internal.PressureFromProto.(func(*memcontractv1.MemoryPressure) (memcontract.Pressure, error))
	usageText         = internal.FormatUsage.(func(float64) string)
	coreMatcher       = internal.CoreMatcher.(func([]string) func(string) bool)
)

// pressureKeys are the x-memory-* keys of p, as key/value pairs.
func pressureKeys(p Pressure) []string { return encodePairs(p) }

// formatUsage is p's usage as x-memory-usage writes it ("68.4%").
func formatUsage(p Pressure) string { return usageText(p.UsageRatio) }
