package dataplane

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/sirupsen/logrus"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/wsfleet/wsfleet/api/clip"
	"github.com/wsfleet/wsfleet/api/errclass"
	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
	"github.com/wsfleet/wsfleet/dataplane/admission"
)

// POST <Path>/client-report takes failures only a client saw — no node
// reached (DNS, TCP, TLS), a proxy answering instead of a node, no 101 in
// time, a connection lost without a close frame — and records each as an
// event of kind CLIENT_REPORT with its client_* class, through the node's
// normal sink, so that `wsctl trace ID` shows the client's view next to
// the node's side.
//
// The body is {"reports":[{"trace_id","class","url","time","detail"}]}
// with Content-Type application/json or text/plain (navigator.sendBeacon
// sends text/plain without a preflight). It is taken only from origins the
// pool's allowlist admits — the handshake's own matcher — with CORS for
// them (Access-Control-Allow-Origin echoes the origin, Vary: Origin);
// any other origin gets 403 and records nothing. Everything is bounded by
// Config: the body's bytes (413, the rest never read), the reports per
// request (400: a request over the bound is refused whole rather than
// clipped, since a client that sends more than any SDK batches is broken,
// and clipping would drop reports it believes accepted), each url and
// detail (clipped with api/clip, never refused for length), and the
// requests per client address (429 + Retry-After). A report whose class is
// not a client_* class, whose trace id is not one a node could have given,
// or whose time is unreadable makes the whole request 400, naming
// reports[i] and the field: nothing of it is recorded.

// clientReport is one report as the client sends it.
type clientReport struct {
	TraceID string          `json:"trace_id"`
	Class   string          `json:"class"`
	URL     string          `json:"url"`
	Time    json.RawMessage `json:"time"`
	Detail  string          `json:"detail"`
}

// reportError is a refused request: its status, the metric reason and the
// text of the body.
type reportError struct {
	status int
	reason string
	msg    string
}

func (n *Node) serveClientReport(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Add("Vary", "Origin")
	var origin string
	if vs := r.Header["Origin"]; len(vs) > 0 {
		origin = vs[0]
	}
	refuse := func(e reportError) {
		n.metrics.reportsRefused.WithLabelValues(e.reason).Inc()
		n.log.WithFields(logrus.Fields{"node_id": n.cfg.NodeID, "reason": e.reason, "error": e.msg,
			"origin": n.capField(fieldOrigin, origin), "remote": n.capField(fieldRemote, r.RemoteAddr)}).Debug("client report refused")
		writeJSON(w, e.status, map[string]string{"error": e.msg})
	}
	if r.Method != http.MethodPost && r.Method != http.MethodOptions {
		h.Set("Allow", "POST, OPTIONS")
		refuse(reportError{http.StatusMethodNotAllowed, refusedMethod, "method not allowed"})
		return
	}
	if !n.admitter.OriginAllowed(origin) {
		refuse(reportError{http.StatusForbidden, refusedOrigin, "origin not allowed"})
		return
	}
	if origin != "" {
		h.Set("Access-Control-Allow-Origin", origin)
	}
	if r.Method == http.MethodOptions {
		h.Set("Access-Control-Allow-Methods", "POST")
		h.Set("Access-Control-Allow-Headers", "Content-Type")
		h.Set("Access-Control-Max-Age", "600")
		w.WriteHeader(http.StatusNoContent)
		return
	}
	now := n.cfg.Now()
	if ok, wait := n.reportLimit.Allow(clientAddr(r.RemoteAddr)); !ok {
		n.reportAbuse.warn(n, now, "client reports over the per-client rate", logrus.Fields{"remote": n.capField(fieldRemote, r.RemoteAddr)})
		h.Set("Retry-After", strconv.Itoa(int((wait+time.Second-1)/time.Second)))
		refuse(reportError{http.StatusTooManyRequests, refusedRateLimited, "rate limited"})
		return
	}
	reports, rerr := n.readReports(w, r)
	if rerr != nil {
		refuse(*rerr)
		return
	}
	events := make([]*wsfleetv1.ErrorEvent, 0, len(reports))
	for i, rep := range reports {
		ev, msg := n.reportEvent(rep, r, origin, now)
		if ev == nil {
			refuse(reportError{http.StatusBadRequest, refusedBadReport, fmt.Sprintf("reports[%d].%s", i, msg)})
			return
		}
		events = append(events, ev)
	}
	for _, ev := range events {
		n.emit(ev)
	}
	n.metrics.reportsAccepted.Add(float64(len(events)))
	writeJSON(w, http.StatusAccepted, map[string]int{"accepted": len(events)})
}

// readReports reads and decodes the body within the Config's bounds.
func (n *Node) readReports(w http.ResponseWriter, r *http.Request) ([]clientReport, *reportError) {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || (mt != "application/json" && mt != "text/plain") {
		return nil, &reportError{http.StatusUnsupportedMediaType, refusedContentType, "Content-Type must be application/json or text/plain"}
	}
	limit := int64(n.cfg.ClientReportMaxBodyBytes)
	tooLarge := &reportError{http.StatusRequestEntityTooLarge, refusedTooLarge, fmt.Sprintf("body over %d bytes", limit)}
	if r.ContentLength > limit {
		// Refused before a byte of it is read; net/http closes the
		// connection rather than drain a large body.
		return nil, tooLarge
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, tooLarge
		}
		return nil, &reportError{http.StatusBadRequest, refusedBadJSON, "body not read: " + err.Error()}
	}
	var doc struct {
		Reports []json.RawMessage `json:"reports"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, &reportError{http.StatusBadRequest, refusedBadJSON, "body is not {\"reports\":[...]}: " + clip.Marked(err.Error(), 200)}
	}
	if len(doc.Reports) > n.cfg.ClientReportMaxReports {
		return nil, &reportError{http.StatusBadRequest, refusedTooMany,
			fmt.Sprintf("reports: %d reports, at most %d per request", len(doc.Reports), n.cfg.ClientReportMaxReports)}
	}
	out := make([]clientReport, len(doc.Reports))
	for i, raw := range doc.Reports {
		if err := json.Unmarshal(raw, &out[i]); err != nil {
			return nil, &reportError{http.StatusBadRequest, refusedBadReport, fmt.Sprintf("reports[%d]: not a report object", i)}
		}
	}
	return out, nil
}

// reportEvent turns a report into its event, or names the field that is
// wrong.
func (n *Node) reportEvent(rep clientReport, r *http.Request, origin string, now time.Time) (*wsfleetv1.ErrorEvent, string) {
	class, err := errclass.Parse(clip.Marked(rep.Class, 64))
	if err != nil || errclass.Lookup(class).Kind != wsfleetv1.EventKind_EVENT_KIND_CLIENT_REPORT {
		return nil, fmt.Sprintf("class: %q is not a client class (want one of %s)", clip.Marked(rep.Class, 64), clientClassNames())
	}
	if !admission.ValidTraceID(rep.TraceID) {
		return nil, fmt.Sprintf("trace_id: must be 1-%d characters of A-Z a-z 0-9 . _ : -", admission.MaxTraceIDLength)
	}
	at, ok := reportTime(rep.Time)
	if !ok {
		return nil, "time: want RFC 3339 text or milliseconds since the epoch as a number"
	}
	ev := newEvent(wsfleetv1.EventKind_EVENT_KIND_CLIENT_REPORT, class, now, now)
	ev.OpenTime = nil // there was no connection
	ev.TraceId = rep.TraceID
	ev.NodeId = n.cfg.NodeID
	ev.Pool = n.cfg.Pool
	ev.Origin = n.capField(fieldOrigin, origin)
	ev.RemoteAddr = n.capField(fieldRemote, r.RemoteAddr)
	ev.UserAgent = n.capField(fieldUserAgent, r.Header.Get("User-Agent"))
	ev.ClientUrl = clip.ValidString(rep.URL, n.cfg.ClientReportMaxURLBytes)
	ev.ClientDetail = clip.ValidString(rep.Detail, n.cfg.ClientReportMaxDetailBytes)
	ev.ClientTime = at
	ev.PolicyRevision = n.snapshot().rev.GetRevision()
	return ev, ""
}

// reportTime reads a report's time: RFC 3339 text, or milliseconds since
// the epoch as a JSON number (Date.now()).
func reportTime(raw json.RawMessage) (*timestamppb.Timestamp, bool) {
	raw = bytes.TrimSpace(raw)
	var ts *timestamppb.Timestamp
	switch {
	case len(raw) == 0 || bytes.Equal(raw, []byte("null")):
		return nil, false
	case raw[0] == '"':
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return nil, false
		}
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return nil, false
		}
		ts = timestamppb.New(t)
	default:
		ms, err := strconv.ParseFloat(string(raw), 64)
		if err != nil || math.IsNaN(ms) || math.IsInf(ms, 0) || math.Abs(ms) > 1e15 {
			return nil, false
		}
		ts = timestamppb.New(time.UnixMilli(int64(ms)))
	}
	return ts, ts.CheckValid() == nil
}

// clientClassNames lists the classes a client may report.
func clientClassNames() string {
	var names []string
	for _, info := range errclass.All() {
		if info.Kind == wsfleetv1.EventKind_EVENT_KIND_CLIENT_REPORT {
			names = append(names, info.Name)
		}
	}
	return strings.Join(names, ", ")
}
