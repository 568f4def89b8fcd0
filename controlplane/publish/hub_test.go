package publish

import (
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/wsfleet/wsfleet/api/channel"
)

func testHub(queueLen int, maxBuffered int64) *hub {
	return newHub(queueLen, 10, maxBuffered, newMetrics(nil, false))
}

func TestANodeWithAFullQueueIsSkippedAndTheOthersGetTheMessage(t *testing.T) {
	h := testHub(1, 1<<20)
	slow, err := h.attach("slow", "shop", "token:a")
	if err != nil {
		t.Fatal(err)
	}
	fast, err := h.attach("fast", "shop", "token:a")
	if err != nil {
		t.Fatal(err)
	}
	if handed, skipped, err := h.publish("shop", "c", []byte(`1`)); err != nil || handed != 2 || skipped != 0 {
		t.Fatalf("first publish: %d handed, %d skipped, %v", handed, skipped, err)
	}
	(<-fast.q).release(1) // fast reads; slow does not

	handed, skipped, err := h.publish("shop", "c", []byte(`2`))
	if err != nil || handed != 1 || skipped != 1 {
		t.Fatalf("second publish: %d handed, %d skipped, %v; want 1 and 1", handed, skipped, err)
	}
	if m := <-fast.q; string(m.data) != "2" {
		t.Fatalf("fast got %q", m.data)
	} else {
		m.release(1)
	}

	t.Run("when every queue is full nothing is delivered", func(t *testing.T) {
		h.detach(fast)
		_, skipped, err := h.publish("shop", "c", []byte(`3`))
		if status.Code(err) != codes.ResourceExhausted || cause(err) != channel.CauseNodeQueuesFull || skipped != 1 {
			t.Fatalf("err = %v (%d skipped), want ResourceExhausted node_queues_full", err, skipped)
		}
	})
	t.Run("a detached stream releases what waited in its queue", func(t *testing.T) {
		if h.buffered.Load() == 0 {
			t.Fatal("the slow node's message is not counted as buffered")
		}
		h.detach(slow)
		if got := h.buffered.Load(); got != 0 {
			t.Fatalf("%d bytes still counted as buffered", got)
		}
	})
}

func TestBufferedBytesAreBoundedCountingASharedMessageOnce(t *testing.T) {
	h := testHub(100, 10)
	for _, id := range []string{"a", "b", "c"} {
		if _, err := h.attach(id, "shop", "token:a"); err != nil {
			t.Fatal(err)
		}
	}
	// Three nodes share each message: 6 bytes, not 18.
	if _, _, err := h.publish("shop", "c", []byte(`"1234"`)); err != nil {
		t.Fatalf("6 of 10 bytes: %v", err)
	}
	if got := h.buffered.Load(); got != 6 {
		t.Fatalf("buffered = %d, want 6", got)
	}
	_, _, err := h.publish("shop", "c", []byte(`"1234"`))
	if status.Code(err) != codes.ResourceExhausted || cause(err) != channel.CauseBufferFull {
		t.Fatalf("12 of 10 bytes: %v, want ResourceExhausted buffer_full", err)
	}
	if !strings.Contains(status.Convert(err).Message(), "--publish-max-buffered-bytes") {
		t.Fatalf("message = %q", status.Convert(err).Message())
	}
}

func TestStreamsAreBounded(t *testing.T) {
	h := newHub(4, 2, 1<<20, newMetrics(nil, false))
	for _, id := range []string{"a", "b"} {
		if _, err := h.attach(id, "shop", "token:a"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := h.attach("c", "shop", "token:a"); status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("a third stream: %v, want ResourceExhausted", err)
	}
	if _, err := h.attach("a", "shop", "token:a"); err != nil {
		t.Fatalf("a node replacing its own stream is not a new one: %v", err)
	}
}

// Concurrent publishes, attaches and detaches leave the byte count at
// zero once every stream is gone (run with -race).
func TestConcurrentPublishesAndDetachesBalanceTheBufferedBytes(t *testing.T) {
	h := testHub(8, 1<<20)
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				id := string(rune('a' + w))
				st, err := h.attach(id, "shop", "token:a")
				if err != nil {
					t.Error(err)
					return
				}
				_, _, _ = h.publish("shop", "c", []byte(`"x"`))
				if i%2 == 0 {
					select {
					case m := <-st.q:
						m.release(1)
					default:
					}
				}
				h.detach(st)
			}
		}()
	}
	wg.Wait()
	if got := h.buffered.Load(); got != 0 {
		t.Fatalf("%d bytes still counted as buffered", got)
	}
}
