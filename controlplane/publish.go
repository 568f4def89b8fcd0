package controlplane

import (
	"context"
	"fmt"
	"net/http"

	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
	"github.com/wsfleet/wsfleet/controlplane/auth"
	"github.com/wsfleet/wsfleet/controlplane/publish"
)

// buildPublish makes the backend publish API: PublishService, the nodes'
// delivery streams and, with NATS configured, the connection to it (made
// in the background: a NATS that is down does not stop the start).
func (s *Server) buildPublish() error {
	pc := s.cfg.Publish
	if pc.MaxStreams == 0 {
		// One delivery stream per node: as many as the registry knows.
		pc.MaxStreams = s.cfg.MaxNodes
	}
	pc.Registerer = s.prom
	pc.Log = s.log
	p, err := publish.New(pc)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	s.publish = p
	return nil
}

// authorizePublishHTTP is the interceptors' auth for POST /v1/publish.
func (s *Server) authorizePublishHTTP(r *http.Request) (context.Context, error) {
	id, err := s.auth.AuthorizeHTTP(r, wsfleetv1.PublishService_Publish_FullMethodName)
	if err != nil {
		return nil, err
	}
	return auth.WithIdentity(r.Context(), id), nil
}
