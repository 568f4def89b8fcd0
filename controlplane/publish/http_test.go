package publish

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
	"github.com/wsfleet/wsfleet/controlplane/auth"
)

// httpServer serves the HTTP form as the control plane mounts it.
func httpServer(t *testing.T, h *harness) *httptest.Server {
	t.Helper()
	authorize := func(r *http.Request) (context.Context, error) {
		id, err := h.auth.AuthorizeHTTP(r, wsfleetv1.PublishService_Publish_FullMethodName)
		if err != nil {
			return nil, err
		}
		return auth.WithIdentity(r.Context(), id), nil
	}
	mux := http.NewServeMux()
	mux.Handle("POST "+HTTPPath, h.srv.HTTPHandler(authorize))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

type httpAnswer struct {
	status  int
	header  http.Header
	body    string
	errBody struct {
		Error struct {
			Code    int               `json:"code"`
			Status  string            `json:"status"`
			Message string            `json:"message"`
			Details []json.RawMessage `json:"details"`
		} `json:"error"`
	}
}

func post(t *testing.T, url, token, body string) httpAnswer {
	t.Helper()
	req, err := http.NewRequest("POST", url+HTTPPath, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	a := httpAnswer{status: resp.StatusCode, header: resp.Header, body: string(b)}
	if resp.StatusCode != http.StatusOK {
		if err := json.Unmarshal(b, &a.errBody); err != nil {
			t.Fatalf("error body is not JSON: %v\n%s", err, b)
		}
		if a.errBody.Error.Code != resp.StatusCode {
			t.Fatalf("error body code %d, HTTP status %d", a.errBody.Error.Code, resp.StatusCode)
		}
	}
	return a
}

func TestTheHTTPFormPublishesLikeGRPC(t *testing.T) {
	h := newHarness(t, Config{MaxBytes: 1024, Rate: 0.001, Burst: 3})
	srv := httpServer(t, h)
	node := attachNode(t, h, edgeToken, "edge-1", "shop")

	a := post(t, srv.URL, shopPublisher, `{"pool": "shop", "channel": "orders:42", "data": {"status": "paid", "n": [1, 2]}}`)
	if a.status != http.StatusOK || a.header.Get("Content-Type") != "application/json" {
		t.Fatalf("status %d (%s): %s", a.status, a.header.Get("Content-Type"), a.body)
	}
	var resp struct {
		Route        string `json:"route"`
		Nodes        int    `json:"nodes"`
		NodesSkipped *int   `json:"nodes_skipped"`
	}
	if err := json.Unmarshal([]byte(a.body), &resp); err != nil || resp.Route != "ROUTE_NODES" || resp.Nodes != 1 || resp.NodesSkipped == nil {
		t.Fatalf("answer %s (%v)", a.body, err)
	}
	if a.body != `{"route":"ROUTE_NODES","nodes":1,"nodes_skipped":0}`+"\n" {
		t.Fatalf("answer %q is not the compact JSON the README shows", a.body)
	}
	if d := recvDelivery(t, node); d.GetChannel() != "orders:42" || string(d.GetData()) != `{"status":"paid","n":[1,2]}` {
		t.Fatalf("delivery %q %q", d.GetChannel(), d.GetData())
	}

	t.Run("null is data", func(t *testing.T) {
		if a := post(t, srv.URL, shopPublisher, `{"pool":"shop","channel":"c","data":null}`); a.status != http.StatusOK {
			t.Fatalf("status %d: %s", a.status, a.body)
		}
		if d := recvDelivery(t, node); string(d.GetData()) != "null" {
			t.Fatalf("delivery %q", d.GetData())
		}
	})
}

func TestHTTPErrorsAreJSONWithTheGRPCCodesHTTPStatus(t *testing.T) {
	h := newHarness(t, Config{MaxBytes: 1024})
	srv := httpServer(t, h)
	ok := `{"pool":"shop","channel":"news","data":1}`
	tests := []struct {
		name   string
		token  string
		body   string
		status int
		code   string
		says   string
		header [2]string // a header the answer must carry
	}{
		{"a bad channel is 400 naming the field", adminToken, `{"pool":"shop","channel":"a b","data":1}`, 400, "INVALID_ARGUMENT", `"field":"channel"`, [2]string{}},
		{"data that is not JSON cannot be a JSON body", adminToken, `{"pool":"shop","channel":"c","data":nope}`, 400, "INVALID_ARGUMENT", `"field":"body"`, [2]string{}},
		{"no data is 400", adminToken, `{"pool":"shop","channel":"c"}`, 400, "INVALID_ARGUMENT", "null is one", [2]string{}},
		{"an unknown key is 400", adminToken, `{"pool":"shop","channel":"c","data":1,"topic":"x"}`, 400, "INVALID_ARGUMENT", `unknown field \"topic\"`, [2]string{}},
		{"two objects are 400", adminToken, ok + ok, 400, "INVALID_ARGUMENT", "more than one JSON value", [2]string{}},
		{"a body over the limit is 400 naming data", adminToken, `{"pool":"shop","channel":"c","data":"` + strings.Repeat("x", 8<<10) + `"}`, 400, "INVALID_ARGUMENT", "data is at most 1024 bytes", [2]string{}},
		{"no token is 401 with a challenge", "", ok, 401, "UNAUTHENTICATED", "missing bearer token", [2]string{"WWW-Authenticate", `Bearer realm="wsfleet"`}},
		{"a viewer is 403", viewerToken, ok, 403, "PERMISSION_DENIED", "may not call", [2]string{}},
		{"a publisher outside its pools is 403", shopPublisher, `{"pool":"blog","channel":"c","data":1}`, 403, "PERMISSION_DENIED", `may not publish to pool \"blog\"`, [2]string{}},
		{"no node attached is 503 NOT_DELIVERED", shopPublisher, ok, 503, "UNAVAILABLE", `"reason":"NOT_DELIVERED"`, [2]string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := post(t, srv.URL, tt.token, tt.body)
			if a.status != tt.status || a.errBody.Error.Status != tt.code {
				t.Fatalf("status %d %s, want %d %s: %s", a.status, a.errBody.Error.Status, tt.status, tt.code, a.body)
			}
			if !strings.Contains(a.body, tt.says) {
				t.Fatalf("body lacks %q: %s", tt.says, a.body)
			}
			if k, v := tt.header[0], tt.header[1]; k != "" && (a.header.Get(k) == "" || v != "" && a.header.Get(k) != v) {
				t.Fatalf("header %s = %q, want %q", k, a.header.Get(k), v)
			}
		})
	}
	t.Run("a GET is not the publish API", func(t *testing.T) {
		resp, err := http.Get(srv.URL + HTTPPath)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed {
			t.Fatalf("status %d", resp.StatusCode)
		}
	})
	t.Run("over the rate is 429 with Retry-After", func(t *testing.T) {
		limited := httpServer(t, newHarness(t, Config{Rate: 0.1, Burst: 1}))
		post(t, limited.URL, shopPublisher, ok) // the burst (503: no node)
		a := post(t, limited.URL, shopPublisher, ok)
		if a.status != 429 || a.errBody.Error.Status != "RESOURCE_EXHAUSTED" || !strings.Contains(a.body, `"cause":"rate_limited"`) {
			t.Fatalf("status %d: %s", a.status, a.body)
		}
		// One token at 0.1/s: 10s, less what passed since the first post.
		if got, err := strconv.Atoi(a.header.Get("Retry-After")); err != nil || got < 5 || got > 10 {
			t.Fatalf("Retry-After = %q, want about 10 (seconds)", a.header.Get("Retry-After"))
		}
	})
	t.Run("refusals are counted by result", func(t *testing.T) {
		if h.published(resultUnauthenticated) != 1 || h.published(resultDenied) < 2 || h.published(resultInvalid) < 6 {
			t.Fatalf("unauthenticated %v, denied %v, invalid %v", h.published(resultUnauthenticated), h.published(resultDenied), h.published(resultInvalid))
		}
	})
}
