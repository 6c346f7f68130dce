package daemon

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"sessiond"
)

// chromiumNames are the names Chromium's executable goes by.
var chromiumNames = []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"}

// findChromium returns the path of the machine's Chromium, or fails the
// test (never skips it): the console is tested in a real browser or not
// at all. scripts/test installs Debian's package when it is missing.
func findChromium(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("SESSIOND_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range chromiumNames {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatalf("Chromium is not installed, and the web console is tested in it: install it with "+
		"`apt-get install -y chromium` (scripts/test does when run as root), or name its executable in SESSIOND_CHROMIUM; looked for %s on PATH",
		strings.Join(chromiumNames, ", "))
	return ""
}

// browser drives one headless Chromium tab against the admin listener.
type browser struct {
	t   *testing.T
	ctx context.Context

	mu     sync.Mutex
	errors []string // console errors and uncaught exceptions of the page
}

// newBrowser starts headless Chromium whose every request carries the
// admin credentials in an Authorization header: the operator has logged
// in, and the credentials never appear in a URL.
func newBrowser(t *testing.T, user, password string) *browser {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(findChromium(t)),
		chromedp.NoSandbox, // tests run as root in containers, where the sandbox cannot start
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.WindowSize(1360, 860),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	b := &browser{t: t, ctx: ctx}
	// The first call starts the browser and lives as long as it: no timeout.
	if _, err := chromedp.Call(ctx, network.Enable, network.EnableParams{}); err != nil {
		t.Fatalf("starting Chromium: %v", err)
	}
	auth := "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+password))
	if _, err := chromedp.Call(ctx, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{Headers: network.Headers{"Authorization": auth}}); err != nil {
		t.Fatal(err)
	}
	msgs := chromedp.Console(ctx)
	go func() {
		for m, err := range msgs {
			if err != nil {
				return
			}
			if m.IsException() || m.Type == "error" {
				b.mu.Lock()
				b.errors = append(b.errors, m.String())
				b.mu.Unlock()
			}
		}
	}()
	return b
}

// do runs steps, failing the test with what it was doing.
func (b *browser) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.t.Fatalf("%s: %v", what, err)
	}
}

// wait waits until the JavaScript expression is truthy. The console polls
// every 2 s, so changes show within a few seconds.
func (b *browser) wait(what, expr string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingTimeout(15*time.Second), chromedp.WithPollingInterval(50*time.Millisecond))); err != nil {
		page, _ := chromedp.Run(b.ctx, chromedp.Evaluate[string](`location.href + '\n' + document.querySelector('main').innerText`))
		b.t.Fatalf("waiting for %s: %v; the page shows:\n%s", what, err, page)
	}
}

// eval returns the value of a JavaScript expression.
func eval[T any](b *browser, expr string) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		b.t.Fatalf("evaluating %s: %v", expr, err)
	}
	return v
}

// screenshot saves the page as dir/console-name.png when
// SESSIOND_SCREENSHOTS names a directory (the README's pictures:
// SESSIOND_SCREENSHOTS=$PWD/docs go test ./daemon -run TestConsole).
func (b *browser) screenshot(name string) {
	b.t.Helper()
	dir := os.Getenv("SESSIOND_SCREENSHOTS")
	if dir == "" {
		return
	}
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		b.t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(dir, "console-"+name+".png"), png, 0o644); err != nil {
		b.t.Fatal(err)
	}
}

// rowsOf is a JavaScript expression: the rows of the table, as
// [id, user, state] arrays.
const rowsOf = `[...document.querySelectorAll('#rows tr[data-id]')].map(r => [r.dataset.id, r.querySelector('td.user b').textContent, r.querySelector('.badge').textContent])`

// TestConsoleInChromium opens the web console of a whole daemon in
// headless Chromium and uses it as an operator would: the table shows a
// session opened through the public API without a reload, filters and
// pages on the server, shows a session's detail and connections, closes
// it after confirmation, and closes all the sessions a filter matches.
func TestConsoleInChromium(t *testing.T) {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"orders":[]}`)
	}))
	defer upstream.Close()
	m := startMain(t, "memory", "/api/orders/="+upstream.URL)
	pub, adm := "http://"+m.PublicAddr(), "http://"+m.AdminAddr()
	admHdr := map[string]string{"Authorization": "Basic " + base64.StdEncoding.EncodeToString([]byte("admin:pw"))}

	openFor := func(user, name, client, addr, data string, expiresIn int) (id, token string) {
		t.Helper()
		body := fmt.Sprintf(`{"user_id":%q,"user_name":%q,"client":%q,"address":%q,"data":%s,"expires_in":%d}`,
			user, name, client, addr, data, expiresIn)
		code, _, b := do(t, call{"POST", pub + "/v1/sessions/open_session", body, nil})
		if code != 200 {
			t.Fatalf("open_session: %d %s", code, b)
		}
		var s struct {
			ID          string `json:"id"`
			AccessToken string `json:"access_token"`
		}
		decode(t, b, &s)
		return s.ID, s.AccessToken
	}
	open := func(user, name, client, addr, data string) (id, token string) {
		t.Helper()
		return openFor(user, name, client, addr, data, 8*3600)
	}

	// The console's files are served under the admin API's authentication.
	for _, path := range []string{"/", "/console/app.js", "/console/app.css"} {
		if code, _, _ := do(t, call{"GET", adm + path, "", nil}); code != 401 {
			t.Errorf("GET %s without credentials: %d, want 401", path, code)
		}
		code, h, b := do(t, call{"GET", adm + path, "", admHdr})
		if code != 200 || len(b) == 0 || h.Get("ETag") == "" || !strings.Contains(h.Get("Content-Security-Policy"), "script-src 'self'") {
			t.Errorf("GET %s: %d, %d bytes, headers %v", path, code, len(b), h)
		}
	}

	// A few sessions of several users, one closed, one expiring at once.
	open("alice", "Alice Martin", "web", "203.0.113.7", `{"cart":3}`)
	openFor("frank", "Frank Ruiz", "web", "203.0.113.12", `{"cart":0}`, 1)
	open("bob", "Bob Chen", "ios", "198.51.100.23", `{"theme":"dark"}`)
	gone, _ := open("carol", "Carol Diaz", "android", "192.0.2.44", `null`)
	open("dave", "", "cli", "2001:db8::5", `{}`)
	if _, err := m.Service.CloseSession(t.Context(), gone, sessiond.ReasonClosed); err != nil {
		t.Fatal(err)
	}

	b := newBrowser(t, "admin", "pw")
	b.do("opening the console", chromedp.Navigate(adm+"/"))
	b.wait("the first page", `document.querySelectorAll('#rows tr[data-id]').length === 5`)
	if got := eval[string](b, `document.querySelector('#range').textContent`); got != "1–5 of 5 sessions" {
		t.Errorf("range: %q", got)
	}
	b.wait("the instance line", `/ · memory store · \d active · up /.test(document.querySelector('#instance').textContent)`)
	b.wait("the expired session", `[...document.querySelectorAll('#rows .badge')].some(b => b.textContent === 'expired')`)
	// A reload would forget this.
	eval[bool](b, `window.__sameDocument = true`)

	// A session opened through the public API appears without a reload,
	// newest first, and uses the gateway once.
	id, token := open("erin", "Erin Novak", "web", "203.0.113.90", `{"cart":1,"coupon":"WINTER"}`)
	code, _, body := do(t, call{"GET", pub + "/api/orders/recent", "", map[string]string{"Xdata-Session-Token": token}})
	if code != 200 {
		t.Fatalf("gateway: %d %s", code, body)
	}
	b.wait("the new session's row", fmt.Sprintf(`document.querySelector('#rows tr:first-child')?.dataset.id === %q`, id))
	b.screenshot("table")

	// An operator on a phone: the table becomes cards.
	b.do("a narrow screen", chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2), chromedp.EmulateMobile))
	b.wait("cards", `getComputedStyle(document.querySelector('thead')).display === 'none' && document.querySelector('#rows tr').offsetWidth <= 390`)
	b.screenshot("narrow")
	b.do("a wide screen again", chromedp.EmulateViewport(1360, 860))

	// Its detail: data, user data and its connection to the gateway's route.
	b.do("opening the detail", chromedp.Click(chromedp.CSS(fmt.Sprintf(`tr[data-id=%q] td.user`, id))))
	b.wait("the detail", fmt.Sprintf(`document.querySelector('#detail-body')?.textContent.includes(%q) && !!document.querySelector('table.conns')`, id))
	detail := eval[string](b, `document.querySelector('#detail-body').innerText`)
	for _, want := range []string{`"coupon": "WINTER"`, "/api/orders/", "Erin Novak", "203.0.113.90", "active"} {
		if !strings.Contains(detail, want) {
			t.Errorf("detail lacks %q:\n%s", want, detail)
		}
	}
	b.screenshot("detail")

	// Close it from the detail, confirming the dialog.
	b.do("asking to close", chromedp.Click(chromedp.ID("detail-close-session")))
	b.wait("the confirmation", `document.querySelector('#confirm').open && document.querySelector('#confirm-text').textContent.includes('erin')`)
	b.do("confirming", chromedp.Click(chromedp.ID("confirm-ok")))
	b.wait("the closed state in the detail", `document.querySelector('#detail-body .detail-actions .badge')?.textContent === 'closed'`)
	b.wait("the closed state in the table", fmt.Sprintf(`document.querySelector('tr[data-id=%q] .badge')?.textContent === 'closed'`, id))
	if s, err := m.Service.Get(t.Context(), id); err != nil || s.Active {
		t.Errorf("after the console closed it, the session is %+v, %v", s, err)
	}
	b.do("closing the detail", chromedp.Click(chromedp.ID("detail-close")))
	b.wait("the detail gone", `getComputedStyle(document.querySelector('#detail')).display === 'none'`)

	// More sessions than a page holds, filtered and paged by the server.
	for i := range 30 {
		open("bulk", "", "batch", fmt.Sprintf("10.0.0.%d", i+1), `{}`)
	}
	b.do("choosing 25 a page", chromedp.SetValue(chromedp.ID("size"), "25"),
		chromedp.Evaluate[chromedp.Void](`document.getElementById('size').dispatchEvent(new Event('change'))`))
	b.wait("36 sessions, 25 a page", `document.querySelector('#range').textContent === '1–25 of 36 sessions'`)
	b.do("filtering by user", chromedp.SendKeys(chromedp.CSS(`#filters input[name=user]`), "bulk"))
	b.wait("the filtered page", `document.querySelector('#range').textContent === '1–25 of 30 sessions'`)
	if rows := eval[[][]string](b, rowsOf); len(rows) != 25 || rows[0][1] != "bulk" || rows[24][1] != "bulk" {
		t.Errorf("filtered rows: %v", rows)
	}
	if got := eval[string](b, `location.hash`); got != "#user=bulk&size=25" {
		t.Errorf("the address keeps the view as %q", got)
	}
	b.do("next page", chromedp.Click(chromedp.ID("next")))
	b.wait("the second page", `document.querySelector('#range').textContent === '26–30 of 30 sessions' && document.querySelectorAll('#rows tr[data-id]').length === 5`)
	if got := eval[string](b, `document.querySelector('#pageno').textContent`); got != "Page 2 of 2" {
		t.Errorf("page number: %q", got)
	}
	b.do("previous page", chromedp.Click(chromedp.ID("prev")))
	b.wait("the first page again", `document.querySelector('#range').textContent === '1–25 of 30 sessions'`)

	// Close all that the filter matches.
	b.do("asking to close all matching", chromedp.Click(chromedp.ID("close-all")))
	b.wait("the bulk confirmation", `document.querySelector('#confirm').open && document.querySelector('#confirm-title').textContent === 'Close 30 open sessions?'`)
	b.do("confirming", chromedp.Click(chromedp.ID("confirm-ok")))
	b.wait("every row closed", `(r => r.length === 25 && r.every(x => x.querySelector('.badge').textContent === 'closed'))([...document.querySelectorAll('#rows tr[data-id]')])`)
	page, err := m.Service.List(t.Context(), sessiond.Filter{UserID: "bulk", State: sessiond.StateActive}, sessiond.Paging{Take: 100, Total: true})
	if err != nil || page.Total == nil || *page.Total != 0 {
		t.Errorf("active bulk sessions after closing all: %+v, %v", page, err)
	}

	b.do("clearing the filters", chromedp.Click(chromedp.CSS(`#filters button[type=reset]`)))
	b.wait("every session", `document.querySelector('#range').textContent === '1–25 of 36 sessions'`)

	if !eval[bool](b, `window.__sameDocument === true`) {
		t.Error("the page was reloaded")
	}
	b.mu.Lock()
	for _, e := range b.errors {
		t.Errorf("the page logged %s", e)
	}
	b.mu.Unlock()

	// A view the server refuses (a hand-edited address): the error is
	// shown, and the console recovers when the view is fixed.
	eval[string](b, `location.hash = '#page=1000000000000000'`)
	b.wait("the error", `!document.querySelector('#error').hidden && document.querySelector('#error').textContent.includes('page[number] must be a whole number') && document.querySelector('#empty').textContent.startsWith('Could not load sessions')`)
	eval[string](b, `location.hash = '#size=25'`)
	b.wait("the recovery", `document.querySelector('#error').hidden && document.querySelector('#range').textContent === '1–25 of 36 sessions'`)
}
