package wsclient

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"

	"github.com/sirupsen/logrus"

	"github.com/wsfleet/wsfleet/api/clip"
)

// report is one entry of a POST to /ws/client-report: a failure the node
// never saw (a client_* class), as the client saw it.
type report struct {
	TraceID string `json:"trace_id"`
	Class   string `json:"class"`
	URL     string `json:"url"`
	// Time is RFC 3339 with milliseconds.
	Time   string `json:"time"`
	Detail string `json:"detail,omitempty"`
}

const reportTimeLayout = "2006-01-02T15:04:05.000Z07:00"

func reportOf(f *Failure) report {
	return report{
		TraceID: f.TraceID,
		Class:   f.Name,
		URL:     clip.Marked(f.URL, maxReportURLBytes),
		Time:    f.Time.UTC().Format(reportTimeLayout),
		Detail:  clip.Marked(f.Detail, maxReportDetailBytes),
	}
}

// queueLocked adds r to the reports waiting for a node, dropping the
// oldest beyond MaxQueuedReports: the newest failures say most about an
// outage that is still going on.
func (c *Client) queueLocked(r report) {
	c.stats.ReportsQueued++
	c.reports = append(c.reports, r)
	if over := len(c.reports) - c.cfg.MaxQueuedReports; over > 0 {
		c.reports = append(c.reports[:0:0], c.reports[over:]...)
		c.stats.ReportsDropped += uint64(over)
	}
}

// flushLocked starts posting the queued reports, once a node has welcomed
// a connection (so one is reachable); one flush at a time.
func (c *Client) flushLocked() {
	if c.flushing || len(c.reports) == 0 {
		return
	}
	batch := c.reports
	c.reports, c.flushing = nil, true
	c.wg.Add(1)
	go c.post(batch)
}

// post sends batch in requests of at most maxReportsPerRequest. Reports
// the node could not take now (network error, 429, 5xx) go back in the
// queue for the next connection; those it refused (4xx: a node that does
// not know the class, an origin it does not admit) are dropped and
// counted.
func (c *Client) post(batch []report) {
	defer c.wg.Done()
	var sent, refused uint64
	var back []report
	for len(batch) > 0 {
		n := min(len(batch), maxReportsPerRequest)
		status, err := c.postOnce(batch[:n])
		if err != nil || status == http.StatusTooManyRequests || status >= 500 {
			back = batch
			c.log.WithFields(logrus.Fields{"status": status, "error": err, "reports": len(batch)}).Debug("client reports not delivered; kept for the next connection")
			break
		}
		if status/100 == 2 {
			sent += uint64(n)
		} else {
			refused += uint64(n)
			c.log.WithFields(logrus.Fields{"status": status, "reports": n}).Warn("client reports refused by the node; dropped")
		}
		batch = batch[n:]
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.flushing = false
	c.stats.ReportsSent += sent
	c.stats.ReportsDropped += refused
	// Unsent reports go back before those queued meanwhile, within the
	// bound (queueLocked counts the queued ones again, so undo that).
	queued := c.reports
	c.reports = nil
	for _, r := range append(back, queued...) {
		c.queueLocked(r)
	}
	c.stats.ReportsQueued -= uint64(len(back) + len(queued))
}

// maxReportAnswerBytes bounds what is read of the node's answer.
const maxReportAnswerBytes = 4 << 10

func (c *Client) postOnce(rs []report) (int, error) {
	body, err := json.Marshal(struct {
		Reports []report `json:"reports"`
	}{rs})
	if err != nil {
		return 0, err
	}
	ctx, cancel := context.WithTimeout(c.ctx, c.cfg.ExplainTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.httpURL("/client-report").String(), bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	if c.cfg.Origin != "" {
		req.Header.Set("Origin", c.cfg.Origin)
	}
	resp, err := c.cfg.HTTPClient.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxReportAnswerBytes))
	_ = resp.Body.Close()
	return resp.StatusCode, nil
}
