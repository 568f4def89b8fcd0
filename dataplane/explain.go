package dataplane

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/wsfleet/wsfleet/api/errclass"
	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
	"github.com/wsfleet/wsfleet/dataplane/admission"
	"github.com/wsfleet/wsfleet/dataplane/internal/explain"
)

// GET <Path>/explain?trace_id=ID tells the client that made an attempt what
// the node decided for it. A browser never sees the HTTP status of a
// failed handshake, and a connection cut without a close frame reads 1006
// whatever the reason; this endpoint gives the page the class, what it saw
// made readable, whether to retry and when, and what to do — all from
// api/errclass.
//
// Why it leaks nothing a port scan could use:
//
//   - it answers only the address that made the attempt (the TCP peer, not a
//     header a client could forge), and only what the node already told
//     that client: the status or close code it got, spelled out. Anyone else
//     asking about the id — another client, a scanner that guessed or sniffed
//     it — gets the same 404 as for an id that never existed, so the answer
//     does not even tell whether the id exists;
//   - it says nothing about other clients, pools, the policy's contents
//     (which origins are allowed, the limits) or the node beyond its id,
//     which the client already has from the welcome frame;
//   - a record lives ExplainWindow (60 s), long enough for a client to ask
//     right after a failure and no longer;
//   - it is rate-limited per client address, and the store is bounded, so
//     it cannot be used to make the node work or remember much.
//
// Behind a proxy every client has the proxy's address, so "the same
// address" is the proxy's: the answer still only restates a decision about
// an attempt whose trace id the asker must already know.

// explainResponse is the found answer; field order is the contract's.
type explainResponse struct {
	TraceID     string `json:"trace_id"`
	Class       string `json:"class"`
	Signal      string `json:"signal"`
	Retryable   bool   `json:"retryable"`
	RetryAfterS int    `json:"retry_after_s"`
	WhatToDo    string `json:"what_to_do"`
	Message     string `json:"message"`
	NodeID      string `json:"node_id"`
}

// abuseLogInterval: at most one warning per endpoint per interval for
// clients over their rate, with the count of those not logged.
const abuseLogInterval = time.Minute

// abuseLog rate-limits a warning.
type abuseLog struct {
	last       atomic.Int64 // unix nanos of the last line
	suppressed atomic.Int64
}

// warn logs at most once per abuseLogInterval.
func (a *abuseLog) warn(n *Node, now time.Time, msg string, fields logrus.Fields) {
	last := a.last.Load()
	if now.UnixNano()-last < int64(abuseLogInterval) || !a.last.CompareAndSwap(last, now.UnixNano()) {
		a.suppressed.Add(1)
		return
	}
	fields["node_id"] = n.cfg.NodeID
	fields["suppressed"] = a.suppressed.Swap(0)
	n.log.WithFields(fields).Warn(msg)
}

// clientAddr is the request's TCP peer address, IPv4 unmapped; invalid
// when the server gave no usable RemoteAddr.
func clientAddr(remote string) netip.Addr {
	ap, err := netip.ParseAddrPort(remote)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

// noteExplain keeps what the node answered for an attempt, for the
// explain endpoint. It runs once per rejected handshake and per connection
// closed for a failure (record: not for the expected closes, whose close
// code says it all), never per message: one bounded insert.
func (n *Node) noteExplain(traceID, remote string, class wsfleetv1.ErrorClass, httpStatus, closeCode, retryAfter int) {
	n.explains.Add(explain.Record{
		TraceID: traceID, Client: clientAddr(remote), Class: class,
		HTTPStatus: httpStatus, CloseCode: closeCode, RetryAfterSeconds: retryAfter,
	})
}

// signalOf is what the client saw, spelled as errclass spells signals.
func signalOf(rec explain.Record, info errclass.Info) string {
	switch {
	case rec.HTTPStatus != 0:
		s := "HTTP " + strconv.Itoa(rec.HTTPStatus)
		if info.RetryAfter {
			s += " + Retry-After"
		}
		return s
	case info.Kind == wsfleetv1.EventKind_EVENT_KIND_HANDSHAKE_REJECTED && rec.CloseCode != 0:
		return "close " + strconv.Itoa(rec.CloseCode)
	}
	return info.Signal
}

func (n *Node) serveExplain(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	// Readable from any page: an origin-rejected page must be able to read
	// why. Nothing here is a credential or depends on one.
	h.Set("Access-Control-Allow-Origin", "*")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Type", "application/json")
	switch r.Method {
	case http.MethodGet, http.MethodHead:
	case http.MethodOptions:
		h.Set("Access-Control-Allow-Methods", "GET")
		h.Set("Access-Control-Max-Age", "600")
		w.WriteHeader(http.StatusNoContent)
		return
	default:
		h.Set("Allow", "GET, HEAD, OPTIONS")
		writeJSON(w, http.StatusMethodNotAllowed, map[string]string{"error": "method not allowed"})
		return
	}
	now := n.cfg.Now()
	client := clientAddr(r.RemoteAddr)
	if ok, wait := n.explainLimit.Allow(client); !ok {
		n.metrics.explains[explainRateLimited].Inc()
		n.explainAbuse.warn(n, now, "explain requests over the per-client rate", logrus.Fields{"remote": n.capField(fieldRemote, r.RemoteAddr)})
		h.Set("Retry-After", strconv.Itoa(int((wait+time.Second-1)/time.Second)))
		writeJSON(w, http.StatusTooManyRequests, map[string]string{"error": "rate limited"})
		return
	}
	traceID := r.URL.Query().Get("trace_id")
	if !admission.ValidTraceID(traceID) {
		// Not echoed: it is not an id a node would have made or kept.
		n.metrics.explains[explainBadRequest].Inc()
		n.log.WithFields(logrus.Fields{"node_id": n.cfg.NodeID, "remote": n.capField(fieldRemote, r.RemoteAddr)}).Debug("explain: invalid trace id")
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": fmt.Sprintf("trace_id must be 1-%d characters of A-Z a-z 0-9 . _ : -", admission.MaxTraceIDLength)})
		return
	}
	rec, ok := n.explains.Lookup(traceID, client)
	if !ok {
		// One answer for unknown, expired and another client's: a prober
		// learns nothing.
		n.metrics.explains[explainNotFound].Inc()
		n.log.WithFields(logrus.Fields{"node_id": n.cfg.NodeID, "trace_id": traceID, "remote": n.capField(fieldRemote, r.RemoteAddr)}).Debug("explain: unknown trace id")
		writeJSON(w, http.StatusNotFound, struct {
			TraceID string `json:"trace_id"`
			Error   string `json:"error"`
		}{traceID, "unknown trace id"})
		return
	}
	info := errclass.Lookup(rec.Class)
	n.metrics.explains[explainFound].Inc()
	n.log.WithFields(logrus.Fields{"node_id": n.cfg.NodeID, "trace_id": traceID, "class": info.Name}).Debug("explain: answered")
	writeJSON(w, http.StatusOK, explainResponse{
		TraceID: traceID, Class: info.Name, Signal: signalOf(rec, info),
		Retryable: info.Retryable, RetryAfterS: rec.RetryAfterSeconds,
		WhatToDo: info.Action, Message: info.UserMessage, NodeID: n.cfg.NodeID,
	})
}

// writeJSON answers v as a JSON body with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":"internal error"}`)
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}
