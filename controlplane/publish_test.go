package controlplane

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
	"github.com/wsfleet/wsfleet/controlplane/publish"
)

const publisherToken = "publisher-token-0123456789"

// writePublishTokens is writeTokens plus a publisher of pool default.
func writePublishTokens(t *testing.T) string {
	t.Helper()
	path := writeTokens(t)
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString("  - {name: orders, role: publisher, token: " + publisherToken + ", pools: [default]}\n"); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestTheControlPlaneServesBackendPublishes(t *testing.T) {
	srv := startServer(t, func(c *Config) { c.Dev = false; c.TokensFile = writePublishTokens(t) })
	cc := dial(t, srv)
	pub := wsfleetv1.NewPublishServiceClient(cc)

	ctx, cancel := context.WithCancel(withToken(nodeToken))
	defer cancel()
	node, err := wsfleetv1.NewNodeServiceClient(cc).Deliveries(ctx, &wsfleetv1.DeliveriesRequest{NodeId: "node-1"})
	if err != nil {
		t.Fatal(err)
	}
	if md, err := node.Header(); md == nil || err != nil {
		_, err = node.Recv()
		t.Fatalf("delivery stream not attached: %v", err)
	}
	recv := func() *wsfleetv1.DeliveriesResponse {
		t.Helper()
		c := make(chan *wsfleetv1.DeliveriesResponse, 1)
		go func() {
			d, _ := node.Recv()
			c <- d
		}()
		select {
		case d := <-c:
			return d
		case <-time.After(10 * time.Second):
			t.Fatal("no delivery within 10s")
			return nil
		}
	}

	t.Run("a publisher's gRPC publish reaches the attached node", func(t *testing.T) {
		resp, err := pub.Publish(withToken(publisherToken), &wsfleetv1.PublishRequest{Channel: "news", Data: []byte(`{"n": 1}`)})
		if err != nil || resp.GetRoute() != wsfleetv1.PublishResponse_ROUTE_NODES || resp.GetNodes() != 1 {
			t.Fatalf("answer %v, %v", resp, err)
		}
		if d := recv(); d.GetChannel() != "news" || string(d.GetData()) != `{"n":1}` {
			t.Fatalf("delivery %v", d)
		}
	})
	t.Run("the HTTP form on the HTTP address reaches it too", func(t *testing.T) {
		req, _ := http.NewRequest("POST", "http://"+srv.HTTPAddr().String()+publish.HTTPPath, strings.NewReader(`{"channel":"news","data":[1]}`))
		req.Header.Set("Authorization", "Bearer "+publisherToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status %s", resp.Status)
		}
		if d := recv(); string(d.GetData()) != `[1]` {
			t.Fatalf("delivery %v", d)
		}
	})
	t.Run("only a publisher (for its pools) or an admin may publish", func(t *testing.T) {
		for _, tc := range []struct {
			token, pool string
			code        codes.Code
		}{
			{viewerToken, "", codes.PermissionDenied},
			{nodeToken, "", codes.PermissionDenied},
			{publisherToken, "eu", codes.PermissionDenied},
			{adminToken, "eu", codes.Unavailable}, // allowed; no node of eu attached
		} {
			_, err := pub.Publish(withToken(tc.token), &wsfleetv1.PublishRequest{Pool: tc.pool, Channel: "news", Data: []byte(`1`)})
			if status.Code(err) != tc.code {
				t.Errorf("token %s pool %q: %v, want %v", tc.token, tc.pool, err, tc.code)
			}
		}
	})
	t.Run("publishes and streams are in the metrics", func(t *testing.T) {
		body := httpGet(t, "http://"+srv.HTTPAddr().String()+"/metrics")
		for _, want := range []string{
			`wsfleet_control_publishes_total{result="ok"} 2`,
			`wsfleet_control_publishes_total{result="no_node_attached"} 1`,
			`wsfleet_control_publish_streams 1`,
			`wsfleet_control_publish_sent_total 2`,
		} {
			if !strings.Contains(body, want) {
				t.Errorf("/metrics lacks %s", want)
			}
		}
	})
}

func TestPublishConfigIsChecked(t *testing.T) {
	dir := t.TempDir()
	_, err := New(Config{Dev: true, GRPCAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", DataDir: filepath.Join(dir, "d"),
		Publish: publish.Config{MaxBytes: publish.MaxBytesCeiling + 1}})
	if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "--publish-max-bytes") {
		t.Fatalf("err = %v", err)
	}
}
