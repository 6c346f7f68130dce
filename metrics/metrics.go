// Package metrics counts what a sessiond instance does, for GET /metrics on
// the admin listener (SPEC section 7), in a Prometheus registry that the
// daemon owns (never the global one: two daemons in one process keep
// their own figures).
//
// Its figures come from three places, each counted in one place:
//   - the event stream (Watch): opens, closes by reason, deletes, API keys,
//     and the notification lag of other instances' events; the active
//     sessions are read from the store when scraped;
//   - the request path: request latency per API and status class (Request,
//     called by the httpx middleware), authentication failures per API
//     (AuthFailed, called by the limiters), gateway requests, latency and
//     errors per route (Forwarded, called by the gateway);
//   - the store: each method of the engine timed by a decorator (Store),
//     under the cache of a shared engine, so that hits cost no observation.
//
// Label values are bounded: API names, status classes, close reasons,
// store methods and the configured gateway route prefixes; never a session
// id, a user or a client's path. docs/operations.md ("Metrics") lists
// every metric.
package metrics

import (
	"context"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"sessiond"
)

// The APIs of the api label: the dialect that answered a request.
const (
	APICommandable = "commandable"
	APIREST        = "rest"
	APIJSONRPC     = "jsonrpc"
	APIFiles       = "files"
	APIGateway     = "gateway"
	APIAdmin       = "admin"
	// APINone: no API's route matched the path (404).
	APINone = "none"
)

// apis lists the api label's values; apiIndex is its inverse.
var apis = [...]string{APICommandable, APIREST, APIJSONRPC, APIFiles, APIGateway, APIAdmin, APINone}

func apiIndex(api string) int {
	for i, a := range apis {
		if a == api {
			return i
		}
	}
	return len(apis) - 1 // none
}

// classes are the values of the status label: the class of the HTTP
// status answered.
var classes = [...]string{"1xx", "2xx", "3xx", "4xx", "5xx"}

// reasons are the close reasons counted; any other is counted as "other".
var reasons = [...]string{sessiond.ReasonClosed, sessiond.ReasonExpired, sessiond.ReasonForced,
	sessiond.ReasonRevoked, sessiond.ReasonEvicted, "other"}

// Bucket bounds, in seconds. Requests and store calls are usually far
// below a millisecond, so the buckets start at 100µs; gateway requests
// wait up to the upstream timeout (30s by default); the lag between
// instances is milliseconds while notifications flow and seconds to
// minutes after a gap in the stream.
var (
	requestBuckets  = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}
	upstreamBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}
	storeBuckets    = []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 5}
	lagBuckets      = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300}
)

// Options configure Metrics. Zero values take the defaults.
type Options struct {
	// ActiveTTL is how long the count of active sessions read from the
	// store is reused by later scrapes. Default 5s.
	ActiveTTL time.Duration
	// ActiveTimeout bounds that read. Default 5s.
	ActiveTimeout time.Duration
	// Now is the clock the notification lag is measured with. Default
	// time.Now.
	Now func() time.Time
	// Log receives failures to count the active sessions; nil discards.
	Log *slog.Logger
}

// Defaults of Options.
const (
	DefaultActiveTTL     = 5 * time.Second
	DefaultActiveTimeout = 5 * time.Second
)

// Metrics holds one instance's metrics, registered in its registry.
// Its methods are safe for concurrent use and cheap on the request path:
// every labelled child they touch per request is looked up once (in New,
// or at its first use). The request-path methods of a nil
// *Metrics do nothing.
type Metrics struct {
	reg  *prometheus.Registry
	opts Options

	requestVec   *prometheus.HistogramVec
	requests     [len(apis)][len(classes)]atomic.Pointer[prometheus.Observer] // made on first use
	authFailures [len(apis)]prometheus.Counter
	authRefused  [len(apis)]prometheus.Counter

	gwRequests *prometheus.CounterVec
	gwErrors   *prometheus.CounterVec
	gwLatency  *prometheus.HistogramVec
	routes     sync.Map // route prefix -> *routeMetrics

	opened, deleted, keysCreated, keysRevoked, streamLost prometheus.Counter
	closed                                                [len(reasons)]prometheus.Counter
	lag                                                   prometheus.Histogram

	storeLatency *prometheus.HistogramVec
	storeErrors  *prometheus.CounterVec
}

// New registers the metrics of one instance in reg, with the Go runtime
// and process collectors. It fails if reg holds them already (a registry
// serves one instance).
func New(reg *prometheus.Registry, opts Options) (*Metrics, error) {
	if opts.ActiveTTL <= 0 {
		opts.ActiveTTL = DefaultActiveTTL
	}
	if opts.ActiveTimeout <= 0 {
		opts.ActiveTimeout = DefaultActiveTimeout
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	m := &Metrics{reg: reg, opts: opts}
	counter := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Namespace: "sessiond", Name: name, Help: help})
	}
	requests := prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: "sessiond", Name: "http_request_duration_seconds",
		Help: "Time to answer an HTTP request, from its headers read to its handler's return, per API and status class.", Buckets: requestBuckets},
		[]string{"api", "status"})
	authFailures := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "sessiond", Name: "auth_failures_total",
		Help: "Authentications refused for wrong credentials (an unknown or wrong token, API key, secret or admin password), per API."}, []string{"api"})
	authRefused := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "sessiond", Name: "auth_throttled_total",
		Help: "Requests refused unheard (429) because their source failed to authenticate too often, per API."}, []string{"api"})
	m.requestVec = requests
	for i, api := range apis {
		switch api {
		case APIJSONRPC, APIFiles, APIGateway, APIAdmin: // the authenticated APIs
			m.authFailures[i] = authFailures.WithLabelValues(api)
			m.authRefused[i] = authRefused.WithLabelValues(api)
		}
	}
	m.gwRequests = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "sessiond", Name: "gateway_requests_total",
		Help: "Requests forwarded to an upstream, per gateway route (its prefix)."}, []string{"route"})
	m.gwErrors = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "sessiond", Name: "gateway_errors_total",
		Help: "Forwarded requests that failed, per gateway route: the upstream could not be reached or did not answer in time (502, 504), answered 5xx, or broke off its response."}, []string{"route"})
	m.gwLatency = prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: "sessiond", Name: "gateway_upstream_duration_seconds",
		Help: "Time from forwarding a request to the upstream's response headers, per gateway route.", Buckets: upstreamBuckets}, []string{"route"})

	m.opened = counter("sessions_opened_total", "Sessions opened by this instance.")
	closed := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "sessiond", Name: "sessions_closed_total",
		Help: "Sessions closed by this instance, per reason: closed (by a client), expired (idle timeout or expire time, by the sweep), forced (by an operator), revoked (its API key was), evicted (its user's limit)."}, []string{"reason"})
	for i, r := range reasons {
		m.closed[i] = closed.WithLabelValues(r)
	}
	m.deleted = counter("sessions_deleted_total", "Sessions deleted by this instance, or purged by its sweep after retention.")
	m.keysCreated = counter("apikeys_created_total", "API keys created by this instance.")
	m.keysRevoked = counter("apikeys_revoked_total", "API keys revoked by this instance.")
	m.streamLost = counter("events_lost_total", "Times the event stream told that events may have been lost (the channel between instances broke or a subscriber fell behind).")
	m.lag = prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: "sessiond", Name: "event_lag_seconds",
		Help: "Notification lag between instances: for each event of another instance, the time of its arrival here minus its time on the publishing instance's clock (0 when the clocks disagree the other way).", Buckets: lagBuckets})

	m.storeLatency = prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: "sessiond", Name: "store_duration_seconds",
		Help: "Time of a store call, per store method.", Buckets: storeBuckets}, []string{"method"})
	m.storeErrors = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "sessiond", Name: "store_errors_total",
		Help: "Store calls that failed (unavailable, timed out or internal errors; not found and conflicts are answers, not failures), per store method."}, []string{"method"})

	for _, c := range []prometheus.Collector{requests, authFailures, authRefused, m.gwRequests, m.gwErrors, m.gwLatency,
		m.opened, closed, m.deleted, m.keysCreated, m.keysRevoked, m.streamLost, m.lag, m.storeLatency, m.storeErrors,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// Handler serves the registry in the Prometheus text format (or another
// exposition format that the scraper's Accept header asks for).
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorLog: slogErrorLog{m.opts.Log}})
}

type slogErrorLog struct{ log *slog.Logger }

func (l slogErrorLog) Println(v ...any) { l.log.Warn("metrics: serving /metrics", "err", v) }

// Request counts one answered HTTP request of api (one of the API
// constants; others count as APINone).
func (m *Metrics) Request(api string, status int, d time.Duration) {
	if m == nil {
		return
	}
	c := status/100 - 1
	if c < 0 || c >= len(classes) {
		c = len(classes) - 1 // a handler wrote a nonsense status: the server answered with it, count it as an error
	}
	i := apiIndex(api)
	o := m.requests[i][c].Load()
	if o == nil {
		// Made on first use, so that the scrape shows only the APIs and
		// classes that were answered (a race makes the same child twice).
		obs := m.requestVec.WithLabelValues(apis[i], classes[c])
		o = &obs
		m.requests[i][c].Store(o)
	}
	(*o).Observe(d.Seconds())
}

// AuthFailed counts an authentication refused for wrong credentials.
func (m *Metrics) AuthFailed(api string) {
	if m == nil {
		return
	}
	if c := m.authFailures[apiIndex(api)]; c != nil {
		c.Inc()
	}
}

// AuthThrottled counts a request refused for its source's failures.
func (m *Metrics) AuthThrottled(api string) {
	if m == nil {
		return
	}
	if c := m.authRefused[apiIndex(api)]; c != nil {
		c.Inc()
	}
}

// Forwarded counts a request the gateway forwarded on route (a configured
// prefix): upstream is the wait for the upstream's response headers (0
// when none came), failed as the session statistics count it.
func (m *Metrics) Forwarded(route string, upstream time.Duration, failed bool) {
	if m == nil {
		return
	}
	rm, ok := m.routes.Load(route)
	if !ok {
		rm, _ = m.routes.LoadOrStore(route, &routeMetrics{m.gwRequests.WithLabelValues(route),
			m.gwErrors.WithLabelValues(route), m.gwLatency.WithLabelValues(route)})
	}
	r := rm.(*routeMetrics)
	r.requests.Inc()
	if upstream > 0 {
		r.latency.Observe(upstream.Seconds())
	}
	if failed {
		r.errors.Inc()
	}
}

// routeMetrics are the children of one gateway route.
type routeMetrics struct {
	requests, errors prometheus.Counter
	latency          prometheus.Observer
}

// Watch subscribes to svc's event stream and registers the active
// sessions gauge, read from svc when scraped. Counters count the events
// of this instance's origin only, so that the sum over instances is the
// cluster's total; events of other origins feed the lag histogram. It
// returns the function that ends the subscription.
func (m *Metrics) Watch(svc *sessiond.Service) (stop func(), err error) {
	if err := m.reg.Register(&activeCollector{m: m, svc: svc, desc: activeDesc}); err != nil {
		return nil, err
	}
	stream := svc.Events()
	own := ""
	if o, ok := stream.(interface{ Origin() string }); ok {
		own = o.Origin()
	}
	return stream.Subscribe(func(evs []sessiond.Event) { m.onEvents(own, evs) }), nil
}

// onEvents counts evs. own is this instance's origin; "" (a stream that
// does not tell it) means every event is this instance's.
func (m *Metrics) onEvents(own string, evs []sessiond.Event) {
	var now time.Time
	for _, e := range evs {
		switch e.Kind {
		case sessiond.EventLost:
			m.streamLost.Inc()
			continue
		case sessiond.EventResumed:
			continue
		}
		if own != "" && e.Origin != own {
			if e.Time.IsZero() {
				continue
			}
			if now.IsZero() {
				now = m.opts.Now()
			}
			m.lag.Observe(max(0, now.Sub(e.Time).Seconds()))
			continue
		}
		switch e.Kind {
		case sessiond.EventOpened:
			m.opened.Inc()
		case sessiond.EventClosed:
			i := len(reasons) - 1
			for j, r := range reasons[:len(reasons)-1] {
				if r == e.Reason {
					i = j
				}
			}
			m.closed[i].Inc()
		case sessiond.EventDeleted:
			m.deleted.Inc()
		case sessiond.EventKeyCreated:
			m.keysCreated.Inc()
		case sessiond.EventKeyRevoked:
			m.keysRevoked.Inc()
		}
	}
}

var activeDesc = prometheus.NewDesc("sessiond_sessions_active",
	"Active sessions in the store, on every instance together (the same figure on each; read from the store when scraped, reused for a few seconds).", nil, nil)

// activeCollector reads the count of active sessions from the store when
// scraped, at most once per ActiveTTL: concurrent scrapes wait for one
// read. When the store does not answer, the gauge is left out of the
// scrape (absent, rather than stale or zero).
type activeCollector struct {
	m    *Metrics
	svc  *sessiond.Service
	desc *prometheus.Desc

	mu    sync.Mutex
	at    time.Time // when n was read
	n     int64
	valid bool
}

func (c *activeCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *activeCollector) Collect(ch chan<- prometheus.Metric) {
	n, ok := c.count()
	if ok {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(n))
	}
}

func (c *activeCollector) count() (int64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	if c.valid && now.Sub(c.at) < c.m.opts.ActiveTTL {
		return c.n, true
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.m.opts.ActiveTimeout)
	defer cancel()
	page, err := c.svc.List(ctx, sessiond.Filter{State: sessiond.StateActive}, sessiond.Paging{Take: 1, Total: true})
	if err != nil || page.Total == nil {
		c.m.opts.Log.Warn("metrics: counting the active sessions", "err", err)
		c.valid = false
		return 0, false
	}
	c.n, c.at, c.valid = *page.Total, now, true
	return c.n, true
}
