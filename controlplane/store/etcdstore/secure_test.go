package etcdstore_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/wsfleet/wsfleet/controlplane/store/etcdstore"
	"github.com/wsfleet/wsfleet/controlplane/store/etcdstore/etcdtest"
	"github.com/wsfleet/wsfleet/controlplane/store/storetest"
)

// works appends to a store and reads the revision back.
func works(t *testing.T, s *etcdstore.Store) {
	t.Helper()
	r, err := s.Append(t.Context(), storetest.Revision("default", "over a secured connection"), 0)
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
	h, err := s.Head(t.Context(), "default")
	if err != nil || h.GetRevision() != r.GetRevision() {
		t.Fatalf("Head = %v, %v", h, err)
	}
}

func TestTLSWithAClientCertificate(t *testing.T) {
	e, files := etcdtest.StartTLS(t)
	t.Run("the CA and a client certificate open the store", func(t *testing.T) {
		s, err := etcdstore.Open(etcdstore.Config{
			Endpoints: []string{e.Endpoint}, CAFile: files.CA, CertFile: files.ClientCert, KeyFile: files.ClientKey, Log: quiet(),
		})
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		defer s.Close()
		works(t, s)
	})
	t.Run("without a client certificate etcd refuses, within the dial timeout", func(t *testing.T) {
		s, err := etcdstore.Open(etcdstore.Config{Endpoints: []string{e.Endpoint}, CAFile: files.CA, DialTimeout: time.Second, Log: quiet()})
		if err == nil {
			_ = s.Close()
			t.Fatal("Open succeeded without a client certificate")
		}
		if !errors.Is(err, etcdstore.ErrUnavailable) || !strings.Contains(err.Error(), e.Endpoint) {
			t.Fatalf("Open: %v, want ErrUnavailable naming %s", err, e.Endpoint)
		}
	})
	t.Run("without TLS etcd cannot be reached", func(t *testing.T) {
		s, err := etcdstore.Open(etcdstore.Config{Endpoints: []string{e.Endpoint}, DialTimeout: time.Second, Log: quiet()})
		if err == nil {
			_ = s.Close()
			t.Fatal("Open succeeded in plain text against a TLS etcd")
		}
		if !errors.Is(err, etcdstore.ErrUnavailable) {
			t.Fatalf("Open: %v, want ErrUnavailable", err)
		}
	})
}

func TestUsernameAndPassword(t *testing.T) {
	e := etcdtest.Start(t, nil)
	e.EnableAuth(t, "s3cret")
	t.Run("the right password opens the store", func(t *testing.T) {
		s, err := etcdstore.Open(etcdstore.Config{Endpoints: []string{e.Endpoint}, Username: "root", Password: "s3cret", Log: quiet()})
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		defer s.Close()
		works(t, s)
	})
	for _, tt := range []struct{ name, user, password string }{
		{"a wrong password is refused", "root", "wrong"},
		{"no credentials are refused", "", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s, err := etcdstore.Open(etcdstore.Config{Endpoints: []string{e.Endpoint}, Username: tt.user, Password: tt.password, DialTimeout: 2 * time.Second, Log: quiet()})
			if err == nil {
				_ = s.Close()
				t.Fatal("Open succeeded")
			}
			if !errors.Is(err, etcdstore.ErrUnavailable) || strings.Contains(err.Error(), "wrong") {
				t.Fatalf("Open: %v, want ErrUnavailable, without the password", err)
			}
		})
	}
}
