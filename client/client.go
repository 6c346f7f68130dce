// Package client is a Go client of the sessiond admin API (SPEC section 7),
// used by the command line and by end-to-end tests.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"
)

// mediaType is the JSON:API media type the admin API speaks.
const mediaType = "application/vnd.api+json"

// maxResponse bounds how much of an answer the client reads.
const maxResponse = 32 << 20

// Client calls one sessiond admin listener. Its fields may be changed
// before first use; it is safe for concurrent use afterwards.
type Client struct {
	// BaseURL is the admin listener's URL, e.g. http://127.0.0.1:8989,
	// possibly with a path prefix when it sits behind a proxy.
	BaseURL string
	// User and Password are the HTTP Basic credentials of an admin user.
	User, Password string
	// HTTP sends the requests.
	HTTP *http.Client
}

// New returns a client of the admin API at baseURL with an HTTP client
// whose requests time out after 30 seconds.
func New(baseURL, user, password string) *Client {
	return &Client{
		BaseURL:  strings.TrimRight(baseURL, "/"),
		User:     user,
		Password: password,
		HTTP:     &http.Client{Timeout: 30 * time.Second},
	}
}

// APIKey is an API key (tenant) of the Session API and the gateway. Secret
// is set only by CreateAPIKey: the server shows it once.
type APIKey struct {
	ID      string    `json:"id"`
	Name    string    `json:"name"`
	Secret  string    `json:"secret,omitempty"`
	Created time.Time `json:"created"`
}

// APIError is an error answered by the admin API, from its JSON:API error
// object (or from the HTTP status alone when the body is not one).
type APIError struct {
	Status int    // HTTP status
	Title  string // e.g. "Not Found"
	Detail string // what was wrong
}

func (e *APIError) Error() string {
	msg := fmt.Sprintf("%d %s", e.Status, e.Title)
	if e.Detail != "" {
		msg += ": " + e.Detail
	}
	return msg
}

// IsNotFound reports whether err is an APIError with status 404.
func IsNotFound(err error) bool {
	var e *APIError
	return errors.As(err, &e) && e.Status == http.StatusNotFound
}

// apiKeyResource is an API key as the admin API encodes it.
type apiKeyResource struct {
	ID         string `json:"id"`
	Type       string `json:"type"`
	Attributes struct {
		Name    string    `json:"name"`
		Secret  string    `json:"secret"`
		Created time.Time `json:"created"`
	} `json:"attributes"`
}

func (r *apiKeyResource) apiKey() APIKey {
	return APIKey{ID: r.ID, Name: r.Attributes.Name, Secret: r.Attributes.Secret, Created: r.Attributes.Created}
}

// CreateAPIKey creates an API key with an optional name and returns it with
// its secret, which the server never shows again.
func (c *Client) CreateAPIKey(ctx context.Context, name string) (APIKey, error) {
	body := map[string]any{"data": map[string]any{
		"type":       "apikeys",
		"attributes": map[string]any{"name": name},
	}}
	var doc struct{ Data apiKeyResource }
	if err := c.do(ctx, http.MethodPost, "/v1/apikeys", body, &doc); err != nil {
		return APIKey{}, err
	}
	if doc.Data.ID == "" || doc.Data.Attributes.Secret == "" {
		return APIKey{}, errors.New("the admin API answered a key without an id or a secret")
	}
	return doc.Data.apiKey(), nil
}

// ListAPIKeys returns every API key, oldest first, without secrets.
func (c *Client) ListAPIKeys(ctx context.Context) ([]APIKey, error) {
	var doc struct{ Data []apiKeyResource }
	if err := c.do(ctx, http.MethodGet, "/v1/apikeys", nil, &doc); err != nil {
		return nil, err
	}
	keys := make([]APIKey, 0, len(doc.Data))
	for i := range doc.Data {
		keys = append(keys, doc.Data[i].apiKey())
	}
	return keys, nil
}

// GetAPIKey returns one API key, without its secret. An unknown id is an
// *APIError with status 404.
func (c *Client) GetAPIKey(ctx context.Context, id string) (APIKey, error) {
	if id == "" {
		return APIKey{}, errors.New("an API key id is required")
	}
	var doc struct{ Data apiKeyResource }
	if err := c.do(ctx, http.MethodGet, "/v1/apikeys/"+url.PathEscape(id), nil, &doc); err != nil {
		return APIKey{}, err
	}
	return doc.Data.apiKey(), nil
}

// RevokeAPIKey revokes an API key: its secret and its sessions' tokens stop
// working and its sessions close. An unknown id is an *APIError with
// status 404.
func (c *Client) RevokeAPIKey(ctx context.Context, id string) error {
	if id == "" {
		return errors.New("an API key id is required")
	}
	return c.do(ctx, http.MethodDelete, "/v1/apikeys/"+url.PathEscape(id), nil, nil)
}

// do sends one request with body encoded as JSON (when not nil) and decodes
// a successful answer into out (when not nil). An error answer becomes an
// *APIError.
func (c *Client) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.BaseURL+path, rd)
	if err != nil {
		return err
	}
	req.SetBasicAuth(c.User, c.Password)
	req.Header.Set("Accept", mediaType)
	if body != nil {
		req.Header.Set("Content-Type", mediaType)
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return fmt.Errorf("reading the answer to %s %s: %w", method, path, err)
	}
	if resp.StatusCode >= 400 {
		return decodeError(resp.StatusCode, b)
	}
	if out == nil || resp.StatusCode == http.StatusNoContent {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("decoding the answer to %s %s: %w", method, path, err)
	}
	return nil
}

// decodeError reads a JSON:API error document; a body that is not one
// (from a proxy, say) is shown, shortened, as the detail.
func decodeError(status int, body []byte) *APIError {
	var doc struct {
		Errors []struct {
			Title  string `json:"title"`
			Detail string `json:"detail"`
		} `json:"errors"`
	}
	if json.Unmarshal(body, &doc) == nil && len(doc.Errors) > 0 {
		e := doc.Errors[0]
		if e.Title == "" {
			e.Title = http.StatusText(status)
		}
		return &APIError{Status: status, Title: e.Title, Detail: e.Detail}
	}
	detail := strings.TrimSpace(string(body))
	if len(detail) > 200 {
		n := 200
		for n > 0 && !utf8.RuneStart(detail[n]) {
			n--
		}
		detail = detail[:n] + "..."
	}
	return &APIError{Status: status, Title: http.StatusText(status), Detail: detail}
}
