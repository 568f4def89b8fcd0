package publish

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"

	"github.com/sirupsen/logrus"
	"google.golang.org/genproto/googleapis/rpc/code"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
)

// HTTPPath is where the HTTP/JSON form of Publish is served (POST).
const HTTPPath = "/v1/publish"

// httpBodySlack is what a request body may hold besides the data: the
// keys, the pool and the channel (even written with \u escapes).
const httpBodySlack = 4 << 10

// httpRequest is the body of POST /v1/publish. Data is any JSON value,
// written as it is (not as a string).
type httpRequest struct {
	Pool    string          `json:"pool"`
	Channel string          `json:"channel"`
	Data    json.RawMessage `json:"data"`
}

// HTTPHandler serves the HTTP/JSON form of Publish: POST /v1/publish with
// "Authorization: Bearer <token>" and the body
//
//	{"pool": "default", "channel": "news", "data": <any JSON>}
//
// It is Publish itself behind authorize (the caller's identity in a
// context, or a status error), so validation, authorization, the rate
// limit, the route and the metrics are the same. The answer is
// PublishResponse in protobuf's JSON mapping, or an error in the form of
// Google's HTTP APIs, its HTTP status mapped from the gRPC code (400, 401,
// 403, 429, 503...):
//
//	{"error": {"code": 400, "status": "INVALID_ARGUMENT", "message": "...",
//	           "details": [{"@type": "type.googleapis.com/google.rpc.BadRequest", ...}]}}
//
// with Retry-After when the refusal carries a RetryInfo, and
// WWW-Authenticate on 401.
func (s *Server) HTTPHandler(authorize func(*http.Request) (context.Context, error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		resp, err := s.serveHTTP(w, r, authorize)
		if err != nil {
			s.logHTTP(r, err)
			writeError(w, err)
			return
		}
		body, err := protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: true}.Marshal(resp)
		var out bytes.Buffer
		if err == nil {
			// protojson varies its whitespace on purpose; the answer is
			// compact, always the same bytes.
			err = json.Compact(&out, body)
		}
		if err != nil {
			writeError(w, status.Error(codes.Internal, "encoding the answer failed"))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(append(out.Bytes(), '\n'))
	})
}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request, authorize func(*http.Request) (context.Context, error)) (*wsfleetv1.PublishResponse, error) {
	ctx, err := authorize(r)
	if err != nil {
		result := resultDenied
		if status.Code(err) == codes.Unauthenticated {
			result = resultUnauthenticated
		}
		s.metrics.publishes.WithLabelValues(result).Inc()
		return nil, err
	}
	req, err := s.decodeHTTP(w, r)
	if err != nil {
		s.metrics.publishes.WithLabelValues(resultInvalid).Inc()
		return nil, err
	}
	return s.Publish(ctx, req)
}

// decodeHTTP reads one JSON object, of the known keys only, from a body
// bounded by MaxBytes plus httpBodySlack.
func (s *Server) decodeHTTP(w http.ResponseWriter, r *http.Request) (*wsfleetv1.PublishRequest, error) {
	limit := int64(s.cfg.MaxBytes) + httpBodySlack
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, limit))
	dec.DisallowUnknownFields()
	var body httpRequest
	err := dec.Decode(&body)
	if err == nil {
		// One object, nothing after it.
		if _, extra := dec.Token(); !errors.Is(extra, io.EOF) {
			err = errors.New("more than one JSON value")
		}
	}
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		return nil, invalidArgument([]*errdetails.BadRequest_FieldViolation{{
			Field:       "data",
			Description: fmt.Sprintf("the request body is over %d bytes: data is at most %d bytes (--publish-max-bytes)", limit, s.cfg.MaxBytes),
		}})
	case err != nil:
		return nil, invalidArgument([]*errdetails.BadRequest_FieldViolation{{
			Field:       "body",
			Description: fmt.Sprintf(`not one JSON object {"pool": ..., "channel": ..., "data": ...}: %v`, err),
		}})
	}
	return &wsfleetv1.PublishRequest{Pool: body.Pool, Channel: body.Channel, Data: body.Data}, nil
}

func (s *Server) logHTTP(r *http.Request, err error) {
	st := status.Convert(err)
	entry := s.log.WithFields(logrus.Fields{"http.path": r.URL.Path, "peer": r.RemoteAddr, "grpc.code": st.Code().String(), "error": st.Message()})
	switch st.Code() {
	case codes.Unavailable:
		entry.Warn("publish refused")
	case codes.Internal, codes.Unknown:
		entry.Error("publish failed")
	default:
		entry.Info("publish refused")
	}
}

// httpStatus maps a gRPC code to its HTTP status, as google.rpc.Code
// documents it (and grpc-gateway does).
func httpStatus(c codes.Code) int {
	switch c {
	case codes.OK:
		return http.StatusOK
	case codes.Canceled:
		return 499 // Client Closed Request
	case codes.InvalidArgument, codes.FailedPrecondition, codes.OutOfRange:
		return http.StatusBadRequest
	case codes.DeadlineExceeded:
		return http.StatusGatewayTimeout
	case codes.NotFound:
		return http.StatusNotFound
	case codes.AlreadyExists, codes.Aborted:
		return http.StatusConflict
	case codes.PermissionDenied:
		return http.StatusForbidden
	case codes.Unauthenticated:
		return http.StatusUnauthorized
	case codes.ResourceExhausted:
		return http.StatusTooManyRequests
	case codes.Unimplemented:
		return http.StatusNotImplemented
	case codes.Unavailable:
		return http.StatusServiceUnavailable
	default: // Unknown, Internal, DataLoss
		return http.StatusInternalServerError
	}
}

// httpError is the error body of Google's HTTP APIs.
type httpError struct {
	Error httpErrorBody `json:"error"`
}

type httpErrorBody struct {
	Code    int               `json:"code"`
	Status  string            `json:"status"`
	Message string            `json:"message"`
	Details []json.RawMessage `json:"details,omitempty"`
}

func writeError(w http.ResponseWriter, err error) {
	st := status.Convert(err)
	body := httpError{Error: httpErrorBody{
		Code:    httpStatus(st.Code()),
		Status:  code.Code(st.Code()).String(),
		Message: st.Message(),
	}}
	for _, d := range st.Proto().GetDetails() {
		if b, err := protojson.Marshal(d); err == nil {
			body.Error.Details = append(body.Error.Details, b)
		}
	}
	for _, d := range st.Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok {
			secs := math.Ceil(ri.GetRetryDelay().AsDuration().Seconds())
			w.Header().Set("Retry-After", strconv.Itoa(max(1, int(secs))))
		}
	}
	if st.Code() == codes.Unauthenticated {
		w.Header().Set("WWW-Authenticate", `Bearer realm="wsfleet"`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(body.Error.Code)
	_ = json.NewEncoder(w).Encode(body)
}
