package commandable_test

// This file holds pipClient, a stand-in for the Pip.Services Go client of
// the sessions protocol (SPEC section 3):
//
//	github.com/pip-services-users2/client-sessions-go  version1.SessionsHttpCommandableClientV1
//
// That module cannot be fetched (the Go module proxy refuses it), so it
// cannot be a test dependency. pipClient is written from a reading of its
// source and of the two libraries it is built on, at the versions its go.mod
// pins:
//
//	client-sessions-go        version1/*.go (commit f53fb74; 0a5b274 differs only in GetSessions' parameter types)
//	pip-services3-rpc-gox     v1.0.6  clients/CommandableHttpClient.go, clients/RestClient.go, clients/Helpers.go
//	pip-services3-commons-gox v1.0.8  data/, convert/, errors/
//
// It puts the same bytes on the wire and decodes answers the same way.
// Each behaviour cites the file and lines it follows; docs/pip-client-notes.md
// lists the same facts. The request bytes pinned in TestPipClientWire were
// checked once against the real rpc-gox v1.0.6 client.
//
// Not mirrored, because no test here depends on them: retries on transport
// errors with their back-off (RestClient.go L352-380, L395-412), logging,
// counters and tracing (RestClient.go L181-205), and connection discovery.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"time"
)

// pipSessionV1 is the client's session document.
// client-sessions-go version1/SessionV1.go L7-24: plain time.Time fields
// (not pointers), so a JSON null close_time decodes to the zero time
// (time.Time.UnmarshalJSON treats null as a no-op); user and data are
// interface{}, so they come back as whatever encoding/json makes of the JSON
// (string, float64, map[string]any, []any, nil). Fields the document does
// not name (expire_time, api_key_id, access_token) are ignored by
// encoding/json.
type pipSessionV1 struct {
	Id          string    `json:"id"`
	UserId      string    `json:"user_id"`
	UserName    string    `json:"user_name"`
	Active      bool      `json:"active"`
	OpenTime    time.Time `json:"open_time"`
	CloseTime   time.Time `json:"close_time"`
	RequestTime time.Time `json:"request_time"`
	Address     string    `json:"address"`
	Client      string    `json:"client"`
	User        any       `json:"user"`
	Data        any       `json:"data"`
}

// pipDataPage is what GetSessions returns.
// client-sessions-go version1/SessionsHttpCommandableClientV1.go L22, L34:
// the result type is commons-gox data.DataPage[*SessionV1], and
// commons-gox data/DataPage.go L33-36 declares `Total int` with no
// UnmarshalJSON. So a null or absent total decodes to 0: the client cannot
// tell "total not asked for" from "total is 0". (SessionV1DataPage.go, with
// `Total *int64`, exists in the module but no client method uses it.)
type pipDataPage struct {
	Total int             `json:"total"`
	Data  []*pipSessionV1 `json:"data"`
}

// pipEmptyTotal is the Total of the page GetSessions returns with an error:
// commons-gox data/DataPage.go L38, L42-47 (NewEmptyDataPage: Total -1, Data
// nil), used by SessionsHttpCommandableClientV1.go L30-32.
const pipEmptyTotal = -1

// pipFilterParams mirrors commons-gox data.FilterParams: a map of strings
// (data/FilterParams.go L16-18 embeds *StringValueMap, whose map is
// map[string]string, data/StringValueMap.go L33-35). It marshals as that map
// (StringValueMap.MarshalJSON, L680-683, through json.Marshal, so keys are
// sorted). A nil pipFilterParams marshals as null, as a nil *FilterParams
// does in the pointer-taking GetSessions of commit f53fb74.
type pipFilterParams map[string]string

// pipFilter builds filter parameters the way data.NewFilterParamsFromTuples
// does (data/FilterParams.go L53-57 → StringValueMap.go L77-95, L269-271,
// L185-187): every value goes through convert.StringConverter.ToString.
func pipFilter(tuples ...any) pipFilterParams {
	f := pipFilterParams{}
	for i := 0; i+1 < len(tuples); i += 2 {
		f[pipToString(tuples[i])] = pipToString(tuples[i+1])
	}
	return f
}

// pipToString mirrors commons-gox convert/StringConverter.go L58-119
// (toNullableString) with L133-138 (default ""): this is why the client sends
// every filter value as a string, and an unset (nil) one as "".
func pipToString(v any) string {
	switch v := v.(type) {
	case nil:
		return "" // L59-61, then the default "" of L133-138
	case string:
		return v
	case uint, uint32, uint64:
		return strconv.FormatUint(reflect.ValueOf(v).Uint(), 10) // L68-70
	case byte, int, int32, int64:
		return strconv.FormatInt(reflect.ValueOf(v).Convert(reflect.TypeFor[int64]()).Int(), 10) // L72-74
	case float32, float64:
		return strconv.FormatFloat(reflect.ValueOf(v).Float(), 'f', -1, 64) // L76-78
	case bool:
		return strconv.FormatBool(v) // L80-87
	case time.Time:
		return v.Format(time.RFC3339) // L89-93: whole seconds, the value's own offset
	case time.Duration:
		return strconv.FormatInt(v.Nanoseconds()/1e6, 10) // L95-99: milliseconds
	}
	rv := reflect.ValueOf(v)
	if rv.Kind() == reflect.Slice || rv.Kind() == reflect.Array { // L102-112
		parts := make([]string, rv.Len())
		for i := range parts {
			parts[i] = fmt.Sprint(rv.Index(i).Interface())
		}
		return strings.Join(parts, ",")
	}
	return fmt.Sprint(v) // L114-115
}

// pipPagingParams mirrors commons-gox data/PagingParams.go L17-21: a plain
// struct, so it goes on the wire as {"skip":N,"take":N,"total":bool} in this
// order, negative values included. A nil *pipPagingParams marshals as null.
type pipPagingParams struct {
	Skip  int64 `json:"skip"`
	Take  int64 `json:"take"`
	Total bool  `json:"total"`
}

// pipEmptyPaging mirrors data.NewEmptyPagingParams (data/PagingParams.go
// L23-30): skip 0, take 50, total false.
func pipEmptyPaging() *pipPagingParams { return &pipPagingParams{Skip: 0, Take: 50, Total: false} }

// pipApplicationError is the error every failed call returns.
// rpc-gox clients/RestClient.go L453-464 decodes the body straight into
// commons-gox errors.ApplicationError (errors/ApplicationError.go L36-45,
// these fields and tags); it does not go through ApplicationErrorFactory, so
// the category is kept as sent and the "type" field is ignored.
type pipApplicationError struct {
	Message       string         `json:"message"`
	Category      string         `json:"category"`
	Status        int            `json:"status"`
	Code          string         `json:"code"`
	Details       map[string]any `json:"details"`
	CorrelationId string         `json:"correlation_id"`
	StackTrace    string         `json:"stack_trace"`
	Cause         string         `json:"cause"`
}

// Error mirrors errors/ApplicationError.go L48-50: the message alone.
func (e *pipApplicationError) Error() string { return e.Message }

// pipBaseRoute is the client's base route:
// SessionsHttpCommandableClientV1.go L14-19 (NewCommandableHttpClient("v1/sessions")).
const pipBaseRoute = "v1/sessions"

// pipClient mirrors SessionsHttpCommandableClientV1 on top of
// CommandableHttpClient and RestClient.
type pipClient struct {
	// URI is RestClient.Uri: "protocol://host:port", no path and no
	// trailing slash (rpc-gox connect/HttpConnectionResolver.go L127-138).
	URI string
	// HTTP is RestClient.Client. The real one is a plain http.Client whose
	// timeout is options.timeout + options.connectTimeout, 10 s + 10 s by
	// default (RestClient.go L218-231); tests may give it a Transport that
	// records what crosses the wire.
	HTTP *http.Client
}

// pipNewClient returns a client for a server at uri (httptest's URL).
func pipNewClient(uri string) *pipClient {
	return &pipClient{URI: uri, HTTP: &http.Client{Timeout: 20 * time.Second}}
}

// callCommand mirrors CommandableHttpClient.CallCommand
// (CommandableHttpClient.go L88-103) and RestClient.Call (RestClient.go
// L328-393). params nil stands for a nil *AnyValueMap: no body at all.
func (c *pipClient) callCommand(ctx context.Context, name, correlationID string, params map[string]any) (*http.Response, error) {
	// URL: RestClient.buildURL (L467-471) = Uri + createRequestRoute
	// (L473-489: "/" + base route + "/" + name) + putParamsToRequestRoute
	// (L491-510). CallCommand passes no query parameters (L97, L99), so the
	// only one is correlation_id, added when non-empty (L337-339 with the
	// default "query" placement, L140; AddCorrelationId L262-274), escaped
	// with url.QueryEscape (L498-500).
	u := c.URI + "/" + pipBaseRoute + "/" + name
	if correlationID != "" {
		u += "?" + url.QueryEscape("correlation_id") + "=" + url.QueryEscape(correlationID)
	}

	// Body: params.Value() (CommandableHttpClient.go L96-97; AnyValueMap
	// holds the values as given, data/AnyValueMap.go L94-112, L134-136,
	// L230-232) marshalled by convert.JsonConverter.ToJson, which is
	// json.Marshal (convert/JsonConverter.go L118-124): map keys sorted, no
	// trailing newline, HTML characters escaped, and a marshalling error
	// silently gives an empty body (RestClient.go L347-350). Nil params send
	// no body (CommandableHttpClient.go L98-99, RestClient.go L348): an empty
	// bytes.Buffer, so Content-Length: 0.
	var body []byte
	if params != nil {
		body, _ = json.Marshal(params)
	}

	// RestClient.prepareRequest (L414-437): http.NewRequest, so ctx is not
	// attached to the request; one header, Content-Type: application/json
	// (L428). The correlation_id header is sent only with the non-default
	// "headers"/"both" placement (L429-431), and RestClient.Headers is empty
	// by default (L138). Go's transport adds Host, User-Agent,
	// Content-Length and Accept-Encoding: gzip.
	_ = ctx
	req, err := http.NewRequest(http.MethodPost, u, bytes.NewBuffer(body))
	if err != nil {
		return nil, &pipApplicationError{Category: "Unknown", Code: "UNSUPPORTED_METHOD",
			Message: "Method is not supported by REST client", Status: 500, CorrelationId: correlationID, Cause: err.Error()}
	}
	req.Header.Set("Content-Type", "application/json")

	res, err := c.HTTP.Do(req)
	if err != nil {
		// L361-371: after the last retry, an UnknownError
		// (errors/UnknownError.go: category Unknown, status 500).
		return nil, &pipApplicationError{Category: "Unknown", Code: "COMMUNICATION_ERROR",
			Message: "Unknown communication problem on REST client", Status: 500, CorrelationId: correlationID, Cause: err.Error()}
	}

	// L382-385: 204 means a nil result, whatever the body; no error.
	if res.StatusCode == http.StatusNoContent {
		res.Body.Close()
		return nil, nil
	}
	// L387-390: any status >= 400 is an error read from the body.
	if res.StatusCode >= 400 {
		defer res.Body.Close()
		return nil, pipResponseError(res, correlationID)
	}
	// Everything else (200, 201, even 3xx that http.Client did not follow)
	// is a result.
	return res, nil
}

// pipResponseError mirrors RestClient.handleResponseError (RestClient.go
// L439-465).
func pipResponseError(res *http.Response, correlationID string) error {
	b, err := io.ReadAll(res.Body)
	if err != nil {
		// L441-451: ApplicationErrorFactory.Create with category
		// "Application", which falls to its default branch
		// (errors/ApplicationErrorFactory.go L71-75): category and status
		// are kept as given.
		return &pipApplicationError{Category: "Application", Status: res.StatusCode,
			Message: err.Error(), CorrelationId: correlationID, Cause: err.Error()}
	}
	// L453-454: decode into ApplicationError, ignoring the error. A field of
	// the wrong type (say "status": "404" or "details": [1]) is skipped by
	// encoding/json; the others still decode.
	e := &pipApplicationError{}
	_ = json.Unmarshal(b, e)
	// L455-462: without a non-zero numeric status the body is not taken for
	// a Pip.Services error: details become the whole body decoded as an
	// object (an empty, non-nil map when it is not one), and the message
	// becomes the raw body when it is not a JSON object.
	if e.Status == 0 && len(b) > 0 {
		values := make(map[string]any)
		if err := json.Unmarshal(b, &values); err != nil {
			e.Message = string(b)
		}
		e.Details = values
	}
	// L463: the HTTP status always wins over the body's.
	e.Status = res.StatusCode
	return e
}

// pipHandleResponse mirrors rpc-gox clients/Helpers.go L16-42
// (HandleHttpResponse[T]): a nil response (204) gives the zero value; else
// the body is decoded by convert.NewDefaultCustomTypeJsonConvertor[T]
// (convert/JsonConverter.go L101-112): an empty body gives the zero value,
// otherwise json.Unmarshal, whose error (not an ApplicationError) is
// returned as is with the zero value.
func pipHandleResponse[T any](res *http.Response, correlationID string) (T, error) {
	var zero T
	if res == nil {
		return zero, nil
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		// Helpers.go L23-35.
		return zero, &pipApplicationError{Category: "Application", Status: res.StatusCode,
			Message: err.Error(), CorrelationId: correlationID, Cause: err.Error()}
	}
	if len(b) == 0 {
		return zero, nil
	}
	var v T
	if err := json.Unmarshal(b, &v); err != nil {
		return zero, err
	}
	return v, nil
}

// pipSession runs a command whose result is a session:
// SessionsHttpCommandableClientV1.go L42-47 and the same three lines in
// every other session method. A transport or HTTP error returns nil and the
// error; 204 returns nil, nil.
func (c *pipClient) pipSession(ctx context.Context, command, correlationID string, params map[string]any) (*pipSessionV1, error) {
	res, err := c.callCommand(ctx, command, correlationID, params)
	if err != nil {
		return nil, err
	}
	return pipHandleResponse[*pipSessionV1](res, correlationID)
}

// GetSessions mirrors SessionsHttpCommandableClientV1.go L21-35. Params are
// {"filter": filter, "paging": paging} (L24-27); on error the result is an
// empty page with Total -1 (L30-32).
func (c *pipClient) GetSessions(ctx context.Context, correlationID string, filter pipFilterParams, paging *pipPagingParams) (pipDataPage, error) {
	params := map[string]any{"filter": filter, "paging": paging}
	res, err := c.callCommand(ctx, "get_sessions", correlationID, params)
	if err != nil {
		return pipDataPage{Total: pipEmptyTotal}, err
	}
	return pipHandleResponse[pipDataPage](res, correlationID)
}

// GetSessionById mirrors SessionsHttpCommandableClientV1.go L37-48:
// {"session_id": id}.
func (c *pipClient) GetSessionById(ctx context.Context, correlationID, id string) (*pipSessionV1, error) {
	return c.pipSession(ctx, "get_session_by_id", correlationID, map[string]any{"session_id": id})
}

// OpenSession mirrors SessionsHttpCommandableClientV1.go L50-69: all six
// parameters are always sent, a nil user or data as null (L54-61).
func (c *pipClient) OpenSession(ctx context.Context, correlationID, userID, userName, address, client string, user, data any) (*pipSessionV1, error) {
	return c.pipSession(ctx, "open_session", correlationID, map[string]any{
		"user_id":   userID,
		"user_name": userName,
		"address":   address,
		"client":    client,
		"user":      user,
		"data":      data,
	})
}

// StoreSessionData mirrors SessionsHttpCommandableClientV1.go L71-84:
// {"session_id", "data"}.
func (c *pipClient) StoreSessionData(ctx context.Context, correlationID, sessionID string, data any) (*pipSessionV1, error) {
	return c.pipSession(ctx, "store_session_data", correlationID, map[string]any{"session_id": sessionID, "data": data})
}

// UpdateSessionUser mirrors SessionsHttpCommandableClientV1.go L86-99:
// {"session_id", "user"}.
func (c *pipClient) UpdateSessionUser(ctx context.Context, correlationID, sessionID string, user any) (*pipSessionV1, error) {
	return c.pipSession(ctx, "update_session_user", correlationID, map[string]any{"session_id": sessionID, "user": user})
}

// CloseSession mirrors SessionsHttpCommandableClientV1.go L101-112:
// {"session_id"}.
func (c *pipClient) CloseSession(ctx context.Context, correlationID, sessionID string) (*pipSessionV1, error) {
	return c.pipSession(ctx, "close_session", correlationID, map[string]any{"session_id": sessionID})
}

// DeleteSessionById mirrors SessionsHttpCommandableClientV1.go L114-125:
// {"session_id"}.
func (c *pipClient) DeleteSessionById(ctx context.Context, correlationID, sessionID string) (*pipSessionV1, error) {
	return c.pipSession(ctx, "delete_session_by_id", correlationID, map[string]any{"session_id": sessionID})
}

// CloseExpiredSessions has no counterpart in the Go client (its interface,
// version1/ISessionsClientV1.go, stops at DeleteSessionById). It sends what
// any CommandableHttpClient sends for a command without parameters,
// CallCommand(ctx, "close_expired_sessions", cid, nil): no body
// (CommandableHttpClient.go L98-99). Its answer is discarded.
func (c *pipClient) CloseExpiredSessions(ctx context.Context, correlationID string) error {
	res, err := c.callCommand(ctx, "close_expired_sessions", correlationID, nil)
	if err != nil {
		return err
	}
	if res != nil {
		res.Body.Close()
	}
	return nil
}
