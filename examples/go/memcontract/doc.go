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
// Client interceptors add the process's keys to every outgoing call and
// remember what each target reported in its trailers. Server interceptors
// expose the caller's pressure to handlers (PeerPressureFromContext), add the
// server's keys to the trailers of every call, report memory through grpc-go's
// ORCA per-call recorder and, at level 3, shed non-core calls with
// codes.ResourceExhausted.
//
// Contracts are the same memory_contract.yaml files the Python side reads
// (LoadContract), validated with exactly the Python rules (the shared corpus
// tests/vectors/contracts holds both to it) into generated
// memcontractv1.ModuleContract messages with the Python side's defaults.
package memcontract
