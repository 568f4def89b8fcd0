package console

import (
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync/atomic"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/wsfleet/wsfleet/controlplane/auth"
)

// Prefix is where the control plane mounts the console on its HTTP server.
const Prefix = "/ui/"

// CookieName is the session cookie's name.
const CookieName = "wsfleet_session"

// MaxTokenBytes bounds a login's token: a session keeps its token for
// the re-authentication of every request, and in dev mode every token
// logs in, so without it MaxSessions sessions could hold MaxBodyBytes
// each. A tokens file's token longer than this cannot log in to the
// console (tokens are random strings of a few dozen bytes).
const MaxTokenBytes = 4096

// CSRFHeader carries the session's CSRF token on every POST.
const CSRFHeader = "X-CSRF-Token"

// ContentSecurityPolicy is sent with every response: scripts and styles
// from the console itself only, no inline code, no framing.
const ContentSecurityPolicy = "default-src 'self'; script-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"

//go:embed web
var webFS embed.FS

// Console serves the web console: the static pages under Prefix and the
// JSON API under Prefix+"api/". See the package documentation.
type Console struct {
	cfg      Config
	sessions *sessions
	logins   *loginLimiter
	rpcs     map[string]rpc
	tails    atomic.Int64
	handler  http.Handler
}

// New checks cfg and returns a Console.
func New(cfg Config) (*Console, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	c := &Console{
		cfg:      cfg,
		sessions: newSessions(cfg.MaxSessions),
		logins:   newLoginLimiter(cfg.LoginRate, cfg.LoginBurst, cfg.MaxLoginIPs),
	}
	c.rpcs = c.table()
	static, err := fs.Sub(webFS, "web")
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("GET "+Prefix, http.StripPrefix(Prefix, staticHandler(http.FileServerFS(static))))
	mux.HandleFunc("GET "+Prefix+"api/session", c.serveSession)
	mux.HandleFunc("POST "+Prefix+"api/login", c.serveLogin)
	mux.HandleFunc("POST "+Prefix+"api/logout", c.serveLogout)
	mux.HandleFunc("POST "+Prefix+"api/rpc/{service}/{method}", c.serveRPC)
	mux.HandleFunc("GET "+Prefix+"api/tail", c.serveTail)
	notFound := func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "NotFound", "no such API call", nil)
	}
	mux.HandleFunc("GET "+Prefix+"api/", notFound)
	mux.HandleFunc("POST "+Prefix+"api/", notFound)
	c.handler = securityHeaders(mux)
	return c, nil
}

// Handler serves everything under Prefix.
func (c *Console) Handler() http.Handler { return c.handler }

// Close ends every session, and with them the live tails.
func (c *Console) Close() { c.sessions.closeAll() }

// securityHeaders adds the headers every response carries; API answers
// are never cached.
func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", ContentSecurityPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		if strings.HasPrefix(r.URL.Path, Prefix+"api/") {
			h.Set("Cache-Control", "no-store")
		}
		next.ServeHTTP(w, r)
	})
}

// staticHandler serves the embedded assets; they change only with the
// binary, so the browser revalidates them.
func staticHandler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-cache")
		next.ServeHTTP(w, r)
	})
}

// crossOrigin is the standard library's check of a request's Fetch
// metadata (Sec-Fetch-Site) and Origin.
var crossOrigin = http.NewCrossOriginProtection()

// sameOrigin reports whether a POST r comes from a page of this console:
// the browser's Sec-Fetch-Site says same-origin, or (a browser without
// Fetch metadata) the Origin header's host is the request's Host
// (http.CrossOriginProtection). The scheme is not compared: behind a
// TLS-terminating proxy the console is served over plain HTTP to pages
// the browser holds for https ones. A request with neither header is
// refused: every browser the console supports sends at least one on a
// POST.
func sameOrigin(r *http.Request) bool {
	if r.Header.Get("Sec-Fetch-Site") == "" && r.Header.Get("Origin") == "" {
		return false
	}
	return crossOrigin.Check(r) == nil
}

// clientIP is the address login attempts are limited by: the connection's
// peer (forwarding headers are not trusted).
func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// loginKey is the key login attempts are limited by: the client's
// address, or for IPv6 its /64 — one host usually holds a whole /64, and
// rotating through it must not buy a fresh limiter per attempt (nor fill
// the table, locking everyone else out).
func loginKey(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil || !a.Is6() || a.Is4In6() {
		return ip
	}
	p, err := a.Prefix(64)
	if err != nil {
		return ip
	}
	return p.String()
}

// errorBody is the JSON of every error answer: the gRPC code's name, its
// message, and the BadRequest field violations when there are any.
type errorBody struct {
	Code       string      `json:"code"`
	Message    string      `json:"message"`
	Violations []violation `json:"violations,omitempty"`
}

type violation struct {
	Field       string `json:"field"`
	Description string `json:"description"`
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, httpCode int, code, msg string, vs []violation) {
	writeJSON(w, httpCode, errorBody{Code: code, Message: msg, Violations: vs})
}

// writeStatus answers a gRPC status error with the HTTP status for its
// code and its field violations.
func writeStatus(w http.ResponseWriter, err error) {
	st := status.Convert(err)
	var vs []violation
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, v := range br.GetFieldViolations() {
				vs = append(vs, violation{Field: v.GetField(), Description: v.GetDescription()})
			}
		}
	}
	writeError(w, HTTPStatus(st.Code()), st.Code().String(), st.Message(), vs)
}

// HTTPStatus maps a gRPC code onto the HTTP status the API answers with.
func HTTPStatus(c codes.Code) int {
	switch c {
	case codes.OK:
		return http.StatusOK
	case codes.InvalidArgument, codes.OutOfRange:
		return http.StatusBadRequest
	case codes.Unauthenticated:
		return http.StatusUnauthorized
	case codes.PermissionDenied:
		return http.StatusForbidden
	case codes.NotFound:
		return http.StatusNotFound
	case codes.AlreadyExists, codes.Aborted, codes.FailedPrecondition:
		return http.StatusConflict
	case codes.ResourceExhausted:
		return http.StatusTooManyRequests
	case codes.Canceled:
		return 499
	case codes.Unimplemented:
		return http.StatusNotImplemented
	case codes.Unavailable:
		return http.StatusServiceUnavailable
	case codes.DeadlineExceeded:
		return http.StatusGatewayTimeout
	default:
		return http.StatusInternalServerError
	}
}

// readBody reads a request body of at most MaxBodyBytes.
func (c *Console) readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, c.cfg.MaxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, http.StatusRequestEntityTooLarge, "InvalidArgument", "request body too large", nil)
		} else {
			writeError(w, http.StatusBadRequest, "InvalidArgument", "cannot read the request body", nil)
		}
		return nil, false
	}
	return body, true
}

// sessionInfo is what the page learns of its session.
type sessionInfo struct {
	Name    string    `json:"name"`
	Role    string    `json:"role"`
	CSRF    string    `json:"csrf"`
	Expires time.Time `json:"expires"`
}

func (c *Console) serveLogin(w http.ResponseWriter, r *http.Request) {
	if !sameOrigin(r) {
		writeError(w, http.StatusForbidden, "PermissionDenied", "cross-origin request refused", nil)
		return
	}
	now := c.cfg.Now()
	if !c.logins.allow(loginKey(clientIP(r)), now) {
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusTooManyRequests, "ResourceExhausted", "too many login attempts; wait a moment", nil)
		return
	}
	body, ok := c.readBody(w, r)
	if !ok {
		return
	}
	var req struct {
		Token string `json:"token"`
	}
	if err := json.Unmarshal(body, &req); err != nil || strings.TrimSpace(req.Token) == "" {
		writeError(w, http.StatusBadRequest, "InvalidArgument", `expected {"token": "..."}`, []violation{{Field: "token", Description: "required"}})
		return
	}
	if n := len(req.Token); n > MaxTokenBytes {
		writeError(w, http.StatusBadRequest, "InvalidArgument", "token too long", []violation{{Field: "token", Description: fmt.Sprintf("%d bytes; at most %d", n, MaxTokenBytes)}})
		return
	}
	id, err := c.cfg.Auth.AuthenticateToken(req.Token)
	if err != nil {
		c.cfg.Log.WithField("remote", clientIP(r)).Info("console: login refused: invalid token")
		writeError(w, http.StatusUnauthorized, "Unauthenticated", "invalid token", []violation{{Field: "token", Description: "invalid token"}})
		return
	}
	if id.Role != auth.RoleAdmin && id.Role != auth.RoleViewer {
		writeError(w, http.StatusForbidden, "PermissionDenied", "the console is for admin and viewer tokens; this one is a "+string(id.Role)+" token", nil)
		return
	}
	s := c.sessions.add(strings.TrimSpace(req.Token), now, c.cfg.SessionTTL)
	http.SetCookie(w, &http.Cookie{
		Name:     CookieName,
		Value:    s.id,
		Path:     Prefix,
		Expires:  s.expires,
		MaxAge:   int(c.cfg.SessionTTL / time.Second),
		HttpOnly: true,
		Secure:   r.TLS != nil,
		SameSite: http.SameSiteStrictMode,
	})
	c.cfg.Log.WithFields(map[string]any{"user": id.Name, "role": id.Role, "remote": clientIP(r)}).Info("console: login")
	writeJSON(w, http.StatusOK, sessionInfo{Name: id.Name, Role: string(id.Role), CSRF: s.csrf, Expires: s.expires})
}

func (c *Console) serveLogout(w http.ResponseWriter, r *http.Request) {
	s, _, ok := c.authorize(w, r, true)
	if !ok {
		return
	}
	c.sessions.remove(s.id)
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: "", Path: Prefix, MaxAge: -1, HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode})
	writeJSON(w, http.StatusOK, map[string]string{})
}

func (c *Console) serveSession(w http.ResponseWriter, r *http.Request) {
	s, id, ok := c.authorize(w, r, false)
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, sessionInfo{Name: id.Name, Role: string(id.Role), CSRF: s.csrf, Expires: s.expires})
}

// authorize finds r's session and re-authenticates its token. A change
// (post true) must also be same-origin and carry the session's CSRF token.
// It answers the request itself when it fails.
func (c *Console) authorize(w http.ResponseWriter, r *http.Request, post bool) (*session, auth.Identity, bool) {
	if post && !sameOrigin(r) {
		writeError(w, http.StatusForbidden, "PermissionDenied", "cross-origin request refused", nil)
		return nil, auth.Identity{}, false
	}
	if !post {
		if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" && site != "none" {
			writeError(w, http.StatusForbidden, "PermissionDenied", "cross-origin request refused", nil)
			return nil, auth.Identity{}, false
		}
	}
	cookie, err := r.Cookie(CookieName)
	if err != nil {
		writeError(w, http.StatusUnauthorized, "Unauthenticated", "not logged in", nil)
		return nil, auth.Identity{}, false
	}
	s := c.sessions.get(cookie.Value, c.cfg.Now())
	if s == nil {
		writeError(w, http.StatusUnauthorized, "Unauthenticated", "session expired or unknown; log in again", nil)
		return nil, auth.Identity{}, false
	}
	if post && !s.csrfOK(r.Header.Get(CSRFHeader)) {
		writeError(w, http.StatusForbidden, "PermissionDenied", "missing or wrong "+CSRFHeader, nil)
		return nil, auth.Identity{}, false
	}
	id, err := c.cfg.Auth.AuthenticateToken(s.token)
	if err != nil {
		// The token was removed from the tokens file since the login.
		c.sessions.remove(s.id)
		writeError(w, http.StatusUnauthorized, "Unauthenticated", "the session's token is no longer valid; log in again", nil)
		return nil, auth.Identity{}, false
	}
	return s, id, true
}
