package admission

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkAdmit measures an admitted handshake without connect
// authorization: origin match, both slots, a token, and the Release.
func BenchmarkAdmit(b *testing.B) {
	p := testPolicy()
	p.Limits.HandshakesPerSecond = 1_000_000
	p.Limits.HandshakeBurst = 1_000_000
	// The clock moves 1ms per call so the bucket never runs dry however
	// fast the loop goes.
	base := time.Now()
	var tick atomic.Int64
	now := func() time.Time { return base.Add(time.Duration(tick.Add(1)) * time.Millisecond) }
	a := mustNew(b, Config{Now: now}, p)
	r := handshake("https://app.example.com", "203.0.113.9:51000")
	ctx := context.Background()

	b.ReportAllocs()
	for b.Loop() {
		tk, rej := a.Admit(ctx, r, "bench")
		if rej != nil {
			b.Fatal(rej)
		}
		tk.Release()
	}
}

func BenchmarkAdmitParallel(b *testing.B) {
	p := testPolicy()
	p.Limits.HandshakesPerSecond = 1_000_000
	p.Limits.HandshakeBurst = 1_000_000
	base := time.Now()
	var tick atomic.Int64
	now := func() time.Time { return base.Add(time.Duration(tick.Add(1)) * time.Millisecond) }
	a := mustNew(b, Config{Now: now}, p)
	var seq atomic.Uint32
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		n := seq.Add(1)
		r := handshake("https://app.example.com", "198.51.100."+string(rune('0'+n%10))+":1")
		for pb.Next() {
			tk, rej := a.Admit(context.Background(), r, "bench")
			if rej != nil {
				b.Error(rej)
				return
			}
			tk.Release()
		}
	})
}

func BenchmarkTraceID(b *testing.B) {
	cases := []struct {
		name  string
		setup func(r *http.Request)
	}{
		{"header", func(r *http.Request) { r.Header.Set("X-Trace-ID", "0af7651916cd43dd8448eb211c80319c") }},
		{"query", func(r *http.Request) { r.URL.RawQuery = "room=7&token=abc&trace_id=0af7651916cd43dd8448eb211c80319c" }},
		{"traceparent", func(r *http.Request) { r.Header.Set("Traceparent", validTraceparent) }},
		{"generated", func(*http.Request) {}},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			r := httptest.NewRequest(http.MethodGet, "/ws", nil)
			c.setup(r)
			b.ReportAllocs()
			for b.Loop() {
				if id, _ := TraceID(r); id == "" {
					b.Fatal("empty id")
				}
			}
		})
	}
}

func BenchmarkValidateUpgrade(b *testing.B) {
	r := handshake("https://app.example.com", "203.0.113.9:51000")
	b.ReportAllocs()
	for b.Loop() {
		if rej := ValidateUpgrade(r); rej != nil {
			b.Fatal(rej)
		}
	}
}
