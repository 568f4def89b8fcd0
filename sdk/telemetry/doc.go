// Package telemetry is the node's error-event reporter: it buffers the
// ErrorEvents a node records (one per rejected handshake and per closed
// connection) and streams them in batches to the control plane over
// NodeService.ReportTelemetry.
//
// Goroutines and blocking:
//
//   - Record runs on the caller's goroutine (the data path). It replaces
//     invalid UTF-8 in the event's strings (protobuf would refuse the whole
//     batch, for good), computes the event's size, then appends under a
//     short mutex; it never waits for the
//     network, and in steady state allocates nothing. When the buffer is over
//     a bound it drops the oldest events not yet in a batch and counts them.
//   - RecordTraffic (the node's sampling goroutine, about once a minute)
//     queues a traffic sample under the same mutex, at most
//     MaxTrafficSamples (oldest dropped, counted), and nudges the loop: the
//     next batch, cut at once, carries every waiting sample. Flush and
//     FinalFlush wait for samples recorded before them as for events.
//   - Run owns the sending loop, on the caller's goroutine. Per stream it
//     starts two goroutines: one sends batches (and is the only one that
//     blocks when the control plane stops reading: gRPC flow control), one
//     receives acknowledgements. Both stop before the next stream opens and
//     before Run returns.
//   - Flush blocks its caller until the control plane has acknowledged what
//     was recorded before the call, or its context ends. FinalFlush, for a
//     node that is stopping, blocks the same way only while a stream is
//     open: with the control plane unreachable it returns at once with the
//     count of events it could not deliver.
//   - Stats takes the mutex briefly; safe to call from a metrics scrape.
//
// Delivery and accounting. Each batch carries the reporter's random id, a
// sequence number (1, 2, 3… per reporter), its events in recording order
// and the number of events dropped since the previous batch. A batch is
// kept until the control plane acknowledges its sequence (acknowledgements
// are cumulative) and resent, with the same sequence, on every new stream
// until then; the control plane drops duplicates by (reporter id,
// sequence). Events are dropped only before they are put in a batch, and
// every drop is counted in exactly one batch, so once everything is
// acknowledged the control plane holds exactly Recorded − Dropped events and
// the batches' dropped fields sum to Dropped. See Config for how the bounds
// split between waiting events and in-flight batches.
//
// Reporter satisfies the node's EventSink and Flusher interfaces
// (dataplane.EventSink, dataplane.Flusher) without importing them: the SDK
// depends only on the API.
package telemetry
