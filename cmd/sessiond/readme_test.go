package main

// TestReadmeWalkthrough runs the walk-throughs of README.md as a newcomer
// would, and checks the answers the README shows.
//
// Which blocks run: every fenced block with the info string "sh" between the
// lines `<!-- walk-through: begin ... -->` and `<!-- walk-through: end -->`
// of README.md, in order, in one `bash` process with `set -euo pipefail`.
// Other blocks (json, yaml, plain) are never run; the sh blocks outside the
// markers (the test command, the load program) never are either, and a
// runnable block that names scripts/test or sessiond-load fails the test.
//
// Where they run: in a fresh copy of the repository (the files `git ls-files
// --cached --others --exclude-standard` lists, as they are in the work tree:
// what a clone would hold once the changes are committed), with TMPDIR in
// the test's temporary directory, no SESSIOND_* variable in the environment,
// and GOFLAGS=-trimpath added so that builds in the copy reuse the build
// cache (without it the copy's directory is part of every cache key).
//
// Ports: the README uses the defaults 127.0.0.1:8080 (public), :8989 (admin)
// and :9000 (the demo backend). The test picks three free ports and rewrites
// those three addresses everywhere in the runnable blocks, adds --listen and
// --admin-listen to the `sessiond serve` line and --admin to every `sessiond
// apikey` line (which otherwise use the defaults), and fails if any of these
// rewrites finds nothing to rewrite or a default port is left.
//
// Answers: when the block right after a runnable block (its opening fence on
// the next line) is a json or plain block, it is the answer shown for it and
// must match the block's standard output. A json answer holds one or more
// JSON values; they must equal the last values of the output, where an
// object of the answer may leave out keys, and ids (32 hex digits), tokens,
// RFC 3339 times and the path up to /data/sessions/ may differ. A plain
// answer is header-like lines, then optionally a blank line and a JSON body:
// each line must be a line of the output (with the same leniency), and the
// body must match the output's body (what follows its first blank line).
//
// On a failure the test prints the block, the rewritten commands, their
// output, and the tail of the daemon's log. To see the output of every block
// (to refresh the answers shown), run
//
//	go test -count=1 -v -run ReadmeWalkthrough ./cmd/sessiond -args -readme.show

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

const (
	walkBegin = "<!-- walk-through: begin"
	walkEnd   = "<!-- walk-through: end"
	// walkTimeout bounds the whole walk-through, a build of sessiond
	// with a cold build cache on a busy machine included (two minutes on
	// two shared cores); with a warm cache it takes seconds.
	walkTimeout = 8 * time.Minute
)

// fence is one fenced block of a Markdown file.
type fence struct {
	info   string // the info string: "sh", "json", "" ...
	line   int    // line number of the opening fence (1-based)
	end    int    // line number of the closing fence
	text   string // the lines between the fences
	inWalk bool   // between the walk-through markers
}

// readFences returns the fenced blocks of a Markdown text, in order.
func readFences(md string) ([]fence, error) {
	var (
		out     []fence
		cur     *fence
		body    []string
		inWalk  bool
		sawWalk bool
	)
	for i, line := range strings.Split(md, "\n") {
		n := i + 1
		if cur != nil {
			if strings.TrimSpace(line) == "```" {
				cur.end, cur.text = n, strings.Join(body, "\n")
				out = append(out, *cur)
				cur, body = nil, nil
				continue
			}
			body = append(body, line)
			continue
		}
		switch {
		case strings.HasPrefix(line, walkBegin):
			if inWalk || sawWalk {
				return nil, fmt.Errorf("line %d: a second walk-through begin marker", n)
			}
			inWalk, sawWalk = true, true
		case strings.HasPrefix(line, walkEnd):
			if !inWalk {
				return nil, fmt.Errorf("line %d: walk-through end marker without a begin", n)
			}
			inWalk = false
		case strings.HasPrefix(line, "```"):
			cur = &fence{info: strings.TrimSpace(strings.TrimPrefix(line, "```")), line: n, inWalk: inWalk}
		}
	}
	switch {
	case cur != nil:
		return nil, fmt.Errorf("line %d: the fenced block is never closed", cur.line)
	case !sawWalk:
		return nil, fmt.Errorf("no %q marker", walkBegin)
	case inWalk:
		return nil, fmt.Errorf("no %q marker", walkEnd)
	}
	return out, nil
}

// step is a runnable block with the answer shown for it, if any.
type step struct {
	block  fence
	script string // the block with the ports rewritten
	answer *fence
}

func walkSteps(fences []fence) []step {
	var steps []step
	for i, f := range fences {
		if !f.inWalk || f.info != "sh" {
			continue
		}
		s := step{block: f}
		if i+1 < len(fences) {
			if next := fences[i+1]; next.line == f.end+1 && (next.info == "json" || next.info == "") {
				s.answer = &next
			}
		}
		steps = append(steps, s)
	}
	return steps
}

// portRewriter rewrites the default addresses of the walk-through to free
// ports, and counts what it rewrote.
type portRewriter struct {
	public, admin, backend string // host:port
	counts                 map[string]int
}

var (
	serveLine  = regexp.MustCompile(`(?m)(^|[\s;&|(])sessiond serve `)
	apikeyLine = regexp.MustCompile(`(?m)(^|[\s;&|(])sessiond apikey `)
	// defaultPort is any of the default ports left after the rewrite.
	defaultPort = regexp.MustCompile(`:(8080|8989|9000)\b`)
)

func (p *portRewriter) rewrite(s string) string {
	count := func(what string, re *regexp.Regexp, s, repl string) string {
		p.counts[what] += len(re.FindAllStringIndex(s, -1))
		return re.ReplaceAllString(s, repl)
	}
	s = count("127.0.0.1:8080", regexp.MustCompile(`127\.0\.0\.1:8080\b`), s, p.public)
	s = count("127.0.0.1:8989", regexp.MustCompile(`127\.0\.0\.1:8989\b`), s, p.admin)
	s = count("127.0.0.1:9000", regexp.MustCompile(`127\.0\.0\.1:9000\b`), s, p.backend)
	s = count("sessiond serve", serveLine, s, "${1}sessiond serve --listen "+p.public+" --admin-listen "+p.admin+" ")
	s = count("sessiond apikey", apikeyLine, s, "${1}sessiond apikey --admin http://"+p.admin+" ")
	return s
}

// freeAddrs returns n distinct free loopback addresses.
func freeAddrs(t *testing.T, n int) []string {
	t.Helper()
	var addrs []string
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close() // held until all are picked, so they differ
		addrs = append(addrs, ln.Addr().String())
	}
	return addrs
}

// copyRepo copies the repository's files (tracked, and untracked but not
// ignored) as they are in the work tree into dst, and returns dst.
func copyRepo(t *testing.T, dst string) string {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		t.Fatal("the README test needs git, to list the repository's files: install git")
	}
	out, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
	if err != nil {
		t.Fatalf("git rev-parse --show-toplevel: %v (the README test runs in a git checkout)", err)
	}
	root := strings.TrimSpace(string(out))
	cmd := exec.Command("git", "ls-files", "-z", "--cached", "--others", "--exclude-standard")
	cmd.Dir = root
	out, err = cmd.Output()
	if err != nil {
		t.Fatalf("git ls-files: %v", err)
	}
	copied := 0
	for _, name := range strings.Split(strings.TrimRight(string(out), "\x00"), "\x00") {
		src := filepath.Join(root, name)
		fi, err := os.Lstat(src)
		if errors.Is(err, os.ErrNotExist) {
			continue // deleted in the work tree
		}
		if err != nil {
			t.Fatal(err)
		}
		if !fi.Mode().IsRegular() {
			continue
		}
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		target := filepath.Join(dst, name)
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(target, b, fi.Mode().Perm()); err != nil {
			t.Fatal(err)
		}
		copied++
	}
	if copied == 0 {
		t.Fatalf("git ls-files listed no file in %s", root)
	}
	return dst
}

// marker separates the output of one block from the next's.
func marker(i int) string { return fmt.Sprintf("\n@@readme-block %d@@\n", i) }

const doneMarker = "\n@@readme-done@@\n"

var readmeShow = flag.Bool("readme.show", false, "log the output of every walk-through block of README.md (to refresh the answers shown)")

func TestReadmeWalkthrough(t *testing.T) {
	for _, tool := range []string{"bash", "curl"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("the README's walk-through needs %s, which is not on PATH: install it (%v)", tool, err)
		}
	}
	tmp := t.TempDir()
	repo := copyRepo(t, filepath.Join(tmp, "repo"))
	md, err := os.ReadFile(filepath.Join(repo, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	fences, err := readFences(string(md))
	if err != nil {
		t.Fatalf("README.md: %v", err)
	}
	steps := walkSteps(fences)
	if len(steps) == 0 {
		t.Fatal("README.md: no sh block between the walk-through markers")
	}

	addrs := freeAddrs(t, 3)
	ports := &portRewriter{public: addrs[0], admin: addrs[1], backend: addrs[2], counts: map[string]int{}}
	var script strings.Builder
	script.WriteString("set -euo pipefail\n")
	for i := range steps {
		s := &steps[i]
		if strings.Contains(s.block.text, "scripts/test") || strings.Contains(s.block.text, "sessiond-load") {
			t.Fatalf("README.md line %d: a walk-through block runs the tests or the load program; keep it outside the walk-through markers:\n%s",
				s.block.line, s.block.text)
		}
		s.script = ports.rewrite(s.block.text)
		if m := defaultPort.FindString(s.script); m != "" {
			t.Fatalf("README.md line %d: %q is left after rewriting the default addresses to free ports; write them as 127.0.0.1:PORT:\n%s",
				s.block.line, m, s.block.text)
		}
		fmt.Fprintf(&script, "printf '\\n@@readme-block %d@@\\n'; printf '\\n@@readme-block %d@@\\n' >&2\n%s\n", i, i, s.script)
	}
	script.WriteString("printf '\\n@@readme-done@@\\n'\n")
	for _, what := range []string{"127.0.0.1:8080", "127.0.0.1:8989", "127.0.0.1:9000", "sessiond serve", "sessiond apikey"} {
		if ports.counts[what] == 0 {
			t.Fatalf("README.md: the walk-through has no %q to point at a free port; update this test with the README", what)
		}
	}
	if ports.counts["sessiond serve"] != 1 {
		t.Fatalf("README.md: the walk-through starts sessiond %d times, want once", ports.counts["sessiond serve"])
	}

	stdout, stderr, runErr := runWalk(t, repo, tmp, script.String())
	outs, errs := splitOutput(stdout, len(steps)), splitOutput(stderr, len(steps))
	if runErr != nil || !strings.Contains(stdout, doneMarker) {
		failed := 0
		for i := range steps {
			if outs[i] != nil {
				failed = i
			}
		}
		s := steps[failed]
		t.Fatalf("README.md line %d: the walk-through failed in this block (%v):\n%s\n--- as run (ports rewritten):\n%s\n--- its output:\n%s\n--- its errors:\n%s\n%s",
			s.block.line, runErr, s.block.text, s.script, deref(outs[failed]), deref(errs[failed]), daemonLog(tmp))
	}
	for i, s := range steps {
		// The answers shown use the default ports.
		out := strings.NewReplacer(ports.public, "127.0.0.1:8080", ports.admin, "127.0.0.1:8989", ports.backend, "127.0.0.1:9000").Replace(*outs[i])
		outs[i] = &out
		if *readmeShow {
			t.Logf("README.md line %d:\n%s\n--- output:\n%s--- errors:\n%s", s.block.line, s.block.text, out, *errs[i])
		}
		if s.answer == nil {
			continue
		}
		if err := matchAnswer(*s.answer, *outs[i]); err != nil {
			t.Errorf("README.md line %d: the answer shown does not match the output of the block at line %d: %v\n--- block:\n%s\n--- answer shown:\n%s\n--- output:\n%s",
				s.answer.line, s.block.line, err, s.block.text, s.answer.text, *outs[i])
		}
	}
}

// runWalk runs script with bash in dir, in a process group of its own that
// is killed when it ends (the walk-through's background processes with it).
func runWalk(t *testing.T, dir, tmp, script string) (stdout, stderr string, err error) {
	t.Helper()
	path := filepath.Join(tmp, "walk.sh")
	if err := os.WriteFile(path, []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	// Files, not pipes: a background process that outlives bash must not
	// hold Wait up.
	outF, err := os.Create(filepath.Join(tmp, "walk.stdout"))
	if err != nil {
		t.Fatal(err)
	}
	defer outF.Close()
	errF, err := os.Create(filepath.Join(tmp, "walk.stderr"))
	if err != nil {
		t.Fatal(err)
	}
	defer errF.Close()

	timeout := walkTimeout
	if d, ok := t.Deadline(); ok && time.Until(d)-30*time.Second < timeout {
		timeout = time.Until(d) - 30*time.Second // fail with the output, before go test's panic
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "--noprofile", "--norc", path)
	cmd.Dir = dir
	cmd.Stdin = nil
	cmd.Stdout, cmd.Stderr = outF, errF
	cmd.Env = walkEnv(tmp)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	err = cmd.Wait()
	syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // whatever the walk-through left running
	if ctx.Err() != nil {
		err = fmt.Errorf("timed out after %v: %w", timeout, err)
	}
	t.Logf("the walk-through ran in %v", time.Since(start).Round(time.Millisecond))
	o, _ := os.ReadFile(outF.Name())
	e, _ := os.ReadFile(errF.Name())
	return string(o), string(e), err
}

// walkEnv is the test's environment as a fresh shell would have it: no
// SESSIOND_* variable, temporary files under tmp, and builds that reuse the
// cache whatever the directory.
func walkEnv(tmp string) []string {
	var env []string
	goflags := "-trimpath"
	for _, kv := range os.Environ() {
		switch {
		case strings.HasPrefix(kv, "SESSIOND_"), strings.HasPrefix(kv, "TMPDIR="):
		case strings.HasPrefix(kv, "GOFLAGS="):
			goflags = strings.TrimSpace(strings.TrimPrefix(kv, "GOFLAGS=") + " " + goflags)
		default:
			env = append(env, kv)
		}
	}
	return append(env, "TMPDIR="+tmp, "GOFLAGS="+goflags)
}

// splitOutput cuts the output of the walk-through at the block markers:
// the i-th entry is the output of block i, nil when it never started.
func splitOutput(s string, n int) []*string {
	parts := make([]*string, n)
	s, _, _ = strings.Cut(s, doneMarker)
	for i := n - 1; i >= 0; i-- {
		before, after, ok := strings.Cut(s, marker(i))
		if !ok {
			continue
		}
		parts[i], s = &after, before
	}
	return parts
}

func deref(s *string) string {
	if s == nil {
		return "(none)"
	}
	return *s
}

// daemonLog returns the tail of the walk-through's sessiond log, if any.
func daemonLog(tmp string) string {
	logs, _ := filepath.Glob(filepath.Join(tmp, "*", "sessiond.log"))
	var b strings.Builder
	for _, name := range logs {
		data, _ := os.ReadFile(name)
		lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
		if len(lines) > 30 {
			lines = lines[len(lines)-30:]
		}
		fmt.Fprintf(&b, "--- %s (tail):\n%s\n", name, strings.Join(lines, "\n"))
	}
	return b.String()
}

// matchAnswer says how the output of a block differs from the answer the
// README shows for it (see the comment at the top of this file).
func matchAnswer(answer fence, output string) error {
	if answer.info == "json" {
		want, err := jsonValues(answer.text)
		if err != nil {
			return fmt.Errorf("the answer shown is not JSON: %v", err)
		}
		return matchValues(want, output)
	}
	head, body, _ := strings.Cut(answer.text, "\n\n")
	outLines := map[string]bool{}
	for line := range strings.SplitSeq(strings.ReplaceAll(output, "\r", ""), "\n") {
		outLines[normalize(strings.TrimSpace(line))] = true
	}
	for line := range strings.SplitSeq(head, "\n") {
		if l := normalize(strings.TrimSpace(line)); l != "" && !outLines[l] {
			return fmt.Errorf("no output line %q", strings.TrimSpace(line))
		}
	}
	if strings.TrimSpace(body) == "" {
		return nil
	}
	want, err := jsonValues(body)
	if err != nil {
		return fmt.Errorf("the body of the answer shown is not JSON: %v", err)
	}
	_, outBody, ok := strings.Cut(strings.ReplaceAll(output, "\r", ""), "\n\n")
	if !ok {
		return errors.New("the output has no body (no blank line)")
	}
	return matchValues(want, outBody)
}

// matchValues matches the JSON values shown with the last values of output.
func matchValues(want []any, output string) error {
	got, err := jsonValues(output)
	if err != nil {
		return fmt.Errorf("the output is not JSON: %v", err)
	}
	if len(got) < len(want) {
		return fmt.Errorf("the output has %d JSON values, the answer shows %d", len(got), len(want))
	}
	got = got[len(got)-len(want):]
	for i := range want {
		if err := matchJSON("$", want[i], got[i]); err != nil {
			return err
		}
	}
	return nil
}

func jsonValues(s string) ([]any, error) {
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var vs []any
	for {
		var v any
		err := dec.Decode(&v)
		if err == io.EOF {
			return vs, nil
		}
		if err != nil {
			return nil, err
		}
		vs = append(vs, v)
	}
}

// matchJSON matches want with got: an object of want may leave out keys,
// and strings match after normalize.
func matchJSON(path string, want, got any) error {
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return fmt.Errorf("%s: shown an object, got %s", path, compact(got))
		}
		keys := make([]string, 0, len(w))
		for k := range w {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			gv, ok := g[k]
			if !ok {
				return fmt.Errorf("%s: shown key %q is not in the output", path, k)
			}
			if err := matchJSON(path+"."+k, w[k], gv); err != nil {
				return err
			}
		}
		return nil
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			return fmt.Errorf("%s: shown an array of %d, got %s", path, len(w), compact(got))
		}
		for i := range w {
			if err := matchJSON(path+"["+strconv.Itoa(i)+"]", w[i], g[i]); err != nil {
				return err
			}
		}
		return nil
	case string:
		if g, ok := got.(string); ok && normalize(w) == normalize(g) {
			return nil
		}
	default: // json.Number, bool, nil
		if fmt.Sprint(want) == fmt.Sprint(got) && fmt.Sprintf("%T", want) == fmt.Sprintf("%T", got) {
			return nil
		}
	}
	return fmt.Errorf("%s: shown %s, got %s", path, compact(want), compact(got))
}

func compact(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// What may differ from one run to the next.
var variable = []struct {
	re   *regexp.Regexp
	repl string
}{
	{regexp.MustCompile(`\b[0-9a-f]{32}\b`), "<id>"},
	{regexp.MustCompile(`\b[A-Z2-7]{26}\b`), "<token>"},
	{regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z`), "<time>"},
	{regexp.MustCompile(`(/[^/\s"]+)+/data/sessions/`), "<dir>/data/sessions/"},
}

func normalize(s string) string {
	for _, v := range variable {
		s = v.re.ReplaceAllString(s, v.repl)
	}
	return s
}

// TestReadmeFences checks the pieces the walk-through test relies on, on a
// small Markdown text.
func TestReadmeFences(t *testing.T) {
	md := "```sh\nnot run\n```\n<!-- walk-through: begin -->\ntext\n```sh\necho '{\"id\":1}'\n```\n```json\n{\"id\":1}\n```\n" +
		"```sh\ncurl -s http://127.0.0.1:8080/x\n```\n\n```json\n{}\n```\n<!-- walk-through: end -->\n```sh\nnot run\n```\n"
	fences, err := readFences(md)
	if err != nil {
		t.Fatal(err)
	}
	steps := walkSteps(fences)
	if len(steps) != 2 || steps[0].block.text != `echo '{"id":1}'` || steps[0].answer == nil || steps[1].answer != nil {
		t.Fatalf("steps: %+v", steps)
	}
	if _, err := readFences("```sh\nx\n"); err == nil {
		t.Error("an unclosed block was accepted")
	}
	if _, err := readFences("no markers"); err == nil {
		t.Error("a README without the walk-through markers was accepted")
	}

	for _, c := range []struct {
		answer fence
		output string
		ok     bool
	}{
		{fence{info: "json", text: `{"id":"e1bff4d28810fb6ec69285fbd463617a","n":1}`}, `{"id":"545d2c0e581ed7b1883c18cef4acd481","n":1,"extra":true}` + "\n", true},
		{fence{info: "json", text: `{"n":1}`}, `{"n":2}`, false},
		{fence{info: "json", text: `{"n":1,"gone":null}`}, `{"n":1}`, false},
		{fence{info: "json", text: `[1,2]`}, `[1]`, false},
		{fence{info: "json", text: `{"t":"2026-11-22T10:00:00.000Z","tok":"CCSR6PVRFO4P6ZXE7WOLCKDO6O"}`}, `{"t":"2026-12-02T14:44:02.909Z","tok":"QR4LBHRKSYNUUATD7RKKS6FCH2"}`, true},
		{fence{info: "json", text: `{"a":2}`}, "{\"a\":1}\n{\"a\":2}\n", true},
		{fence{info: "json", text: `{"a":1}`}, "not json", false},
		{fence{text: "HTTP/1.1 204 No Content"}, "HTTP/1.1 204 No Content\r\nDate: x\r\n\r\n", true},
		{fence{text: "HTTP/1.1 201 Created\nLocation: /x\n\n{\"s\":8}"}, "HTTP/1.1 201 Created\r\nLocation: /x\r\n\r\n{\"s\":8}\n", true},
		{fence{text: "HTTP/1.1 201 Created\n\n{\"s\":8}"}, "HTTP/1.1 201 Created\r\n\r\n{\"s\":9}\n", false},
		{fence{text: "HTTP/1.1 200 OK"}, "HTTP/1.1 404 Not Found\r\n\r\n", false},
		{fence{info: "json", text: `"/tmp/walk/data/sessions/e1bff4d28810fb6ec69285fbd463617a"`}, `"/tmp/a/tmp.Xy1/data/sessions/545d2c0e581ed7b1883c18cef4acd481"`, true},
	} {
		if err := matchAnswer(c.answer, c.output); (err == nil) != c.ok {
			t.Errorf("answer %q, output %q: got %v, want ok=%v", c.answer.text, c.output, err, c.ok)
		}
	}

	p := &portRewriter{public: "127.0.0.1:1", admin: "127.0.0.1:2", backend: "127.0.0.1:3", counts: map[string]int{}}
	got := p.rewrite("sessiond serve --data-dir d --gateway /g/=http://127.0.0.1:9000 &\nx=$(sessiond apikey create)\ncurl http://127.0.0.1:8989/h")
	want := "sessiond serve --listen 127.0.0.1:1 --admin-listen 127.0.0.1:2 --data-dir d --gateway /g/=http://127.0.0.1:3 &\n" +
		"x=$(sessiond apikey --admin http://127.0.0.1:2 create)\ncurl http://127.0.0.1:2/h"
	if got != want {
		t.Errorf("rewrite:\n got %q\nwant %q", got, want)
	}
}
