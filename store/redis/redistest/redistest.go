// Package redistest gives tests a Redis to use: a unique key prefix on the
// shared test server (Prefix), a private standalone server that a test
// may stop and start (Server), or a private three-master Redis Cluster
// (Cluster), all made with the machine's redis-server and redis-cli.
//
// The shared server is at $SESSIOND_TEST_REDIS, by default
// redis://127.0.0.1:6379/0. Tests never flush it: each uses its own
// prefix and deletes its keys when it ends.
package redistest

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"sessiond/store/redis"
)

// DefaultURL is the shared test server when $SESSIOND_TEST_REDIS is not
// set.
const DefaultURL = "redis://127.0.0.1:6379/0"

// BaseURL returns the URL of the shared test server.
func BaseURL() string {
	if u := os.Getenv("SESSIOND_TEST_REDIS"); u != "" {
		return u
	}
	return DefaultURL
}

// Prefix returns a fresh key prefix ("t<random>:") and deletes every key
// under it on the server at url (every master of a cluster) when the test
// ends.
func Prefix(t testing.TB, url string) string {
	t.Helper()
	prefix := "t" + randomHex(6) + ":"
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := DeleteKeys(ctx, url, prefix); err != nil {
			t.Errorf("redistest: deleting the keys of %s: %v", prefix, err)
		}
	})
	return prefix
}

// PrefixURL returns url with a fresh key prefix in its query (prefix=...,
// which redis.Open takes when Options.Prefix is empty), and deletes every
// key under that prefix when the test ends: a store of its own for a test
// that only passes a URL (a sessiond process's --store).
func PrefixURL(t testing.TB, url string) string {
	t.Helper()
	sep := "?"
	if strings.Contains(url, "?") {
		sep = "&"
	}
	return url + sep + "prefix=" + Prefix(t, url)
}

// client returns a client of a store URL, made as the engine makes its
// own (store/redis NewClient), each command bounded by clientTimeout.
func client(url string) (goredis.UniversalClient, error) {
	return redis.NewClient(url, clientTimeout)
}

// clientTimeout bounds each command of the helpers (a SCAN or DEL batch).
const clientTimeout = 30 * time.Second

// eachNode calls fn with a client of every master at url.
func eachNode(ctx context.Context, url string, fn func(ctx context.Context, c *goredis.Client) error) error {
	c, err := client(url)
	if err != nil {
		return err
	}
	defer c.Close()
	if cc, ok := c.(*goredis.ClusterClient); ok {
		return cc.ForEachMaster(ctx, fn)
	}
	return fn(ctx, c.(*goredis.Client))
}

// CountKeys counts the keys under prefix on each master at url, by its
// address (SCAN).
func CountKeys(ctx context.Context, url, prefix string) (map[string]int, error) {
	var mu sync.Mutex
	counts := map[string]int{}
	err := eachNode(ctx, url, func(ctx context.Context, c *goredis.Client) error {
		n := 0
		it := c.Scan(ctx, 0, prefix+"*", 1000).Iterator()
		for it.Next(ctx) {
			n++
		}
		if err := it.Err(); err != nil {
			return err
		}
		mu.Lock()
		counts[c.Options().Addr] = n
		mu.Unlock()
		return nil
	})
	return counts, err
}

// Keys lists the keys under prefix at url.
func Keys(ctx context.Context, url, prefix string) ([]string, error) {
	var keys []string
	ch := make(chan []string, 16)
	err := eachNode(ctx, url, func(ctx context.Context, c *goredis.Client) error {
		var ks []string
		it := c.Scan(ctx, 0, prefix+"*", 1000).Iterator()
		for it.Next(ctx) {
			ks = append(ks, it.Val())
		}
		ch <- ks
		return it.Err()
	})
	close(ch)
	for ks := range ch {
		keys = append(keys, ks...)
	}
	return keys, err
}

// DeleteKeys deletes every key under prefix at url.
func DeleteKeys(ctx context.Context, url, prefix string) error {
	return eachNode(ctx, url, func(ctx context.Context, c *goredis.Client) error {
		it := c.Scan(ctx, 0, prefix+"*", 1000).Iterator()
		for it.Next(ctx) {
			if err := c.Del(ctx, it.Val()).Err(); err != nil {
				return err
			}
		}
		return it.Err()
	})
}

// Server is a private standalone redis-server in a temporary directory,
// with appendonly yes (appendfsync always) so that a restart keeps what it
// acknowledged.
type Server struct {
	t    testing.TB
	Port int
	dir  string
	cmd  *exec.Cmd
}

// StartServer starts a private server on a free port and stops it when the
// test ends.
func StartServer(t testing.TB) *Server {
	t.Helper()
	s := &Server{t: t, Port: freePort(t), dir: t.TempDir()}
	s.Start()
	t.Cleanup(s.Stop)
	return s
}

// URL returns the server's URL.
func (s *Server) URL() string { return fmt.Sprintf("redis://127.0.0.1:%d/0", s.Port) }

// Start starts the server (again) and waits until it answers.
func (s *Server) Start() {
	s.t.Helper()
	s.cmd = startRedis(s.t, s.dir, s.Port, "--appendonly", "yes", "--appendfsync", "always")
}

// Freeze stops the server's process without a word (SIGSTOP), as a
// network partition would; Thaw resumes it.
func (s *Server) Freeze() { s.cmd.Process.Signal(syscall.SIGSTOP) }

// Thaw resumes a frozen server.
func (s *Server) Thaw() { s.cmd.Process.Signal(syscall.SIGCONT) }

// Stop stops the server (SIGTERM, then SIGKILL after 10 s); a stopped
// server is left alone.
func (s *Server) Stop() {
	if s.cmd == nil {
		return
	}
	stop(s.cmd)
	s.cmd = nil
}

func stop(cmd *exec.Cmd) {
	cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		<-done
	}
}

// startRedis runs redis-server on port with its files in dir, and waits
// until it answers PING.
func startRedis(t testing.TB, dir string, port int, args ...string) *exec.Cmd {
	t.Helper()
	c := goredis.NewClient(&goredis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", port), MaxRetries: -1})
	defer c.Close()
	return runRedis(t, dir, c, append([]string{"--port", strconv.Itoa(port)}, args...)...)
}

// runRedis runs redis-server with args and its files in dir, and waits
// until c's PING is answered.
func runRedis(t testing.TB, dir string, c *goredis.Client, args ...string) *exec.Cmd {
	t.Helper()
	all := append([]string{"--bind", "127.0.0.1", "--dir", dir,
		"--save", "", "--daemonize", "no", "--logfile", filepath.Join(dir, "redis.log")}, args...)
	cmd := exec.Command("redis-server", all...)
	if err := cmd.Start(); err != nil {
		t.Fatalf("redistest: starting redis-server: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := c.Ping(ctx).Err()
		cancel()
		if err == nil {
			return cmd
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			cmd.Wait()
			log, _ := os.ReadFile(filepath.Join(dir, "redis.log"))
			t.Fatalf("redistest: redis-server at %s does not answer: %v\n%s", c.Options().Addr, err, log)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Cluster is a private Redis Cluster of three masters, with or without a
// replica each.
type Cluster struct {
	Ports []int
	cmds  map[int]*exec.Cmd
}

// StartCluster starts a three-master cluster without replicas on free
// ports (each with its cluster bus port free too), waits for
// cluster_state:ok on every node, and stops it when the test ends.
func StartCluster(t testing.TB) *Cluster { return startCluster(t, 0) }

// StartClusterWithReplicas is StartCluster with one replica per master
// (six nodes): a failover test stops a master (StopNode) and its replica
// takes over within a few seconds (cluster-node-timeout is 1 s).
func StartClusterWithReplicas(t testing.TB) *Cluster { return startCluster(t, 1) }

func startCluster(t testing.TB, replicas int) *Cluster {
	t.Helper()
	c := &Cluster{cmds: map[int]*exec.Cmd{}}
	t.Cleanup(func() {
		for _, cmd := range c.cmds {
			stop(cmd)
		}
	})
	var addrs []string
	for range 3 * (1 + replicas) {
		port := freeClusterPort(t)
		dir := t.TempDir()
		c.Ports = append(c.Ports, port)
		c.cmds[port] = startRedis(t, dir, port, "--cluster-enabled", "yes",
			"--cluster-config-file", filepath.Join(dir, "nodes.conf"), "--appendonly", "no",
			"--cluster-node-timeout", "1000")
		addrs = append(addrs, fmt.Sprintf("127.0.0.1:%d", port))
	}
	out, err := exec.Command("redis-cli", append(append([]string{"--cluster", "create"}, addrs...),
		"--cluster-replicas", strconv.Itoa(replicas), "--cluster-yes")...).CombinedOutput()
	if err != nil {
		t.Fatalf("redistest: redis-cli --cluster create: %v\n%s", err, out)
	}
	deadline := time.Now().Add(30 * time.Second)
	for _, addr := range addrs {
		cl := goredis.NewClient(&goredis.Options{Addr: addr})
		for {
			info, err := cl.ClusterInfo(context.Background()).Result()
			if err == nil && strings.Contains(info, "cluster_state:ok") && strings.Contains(info, fmt.Sprintf("cluster_known_nodes:%d", len(addrs))) {
				break
			}
			if time.Now().After(deadline) {
				cl.Close()
				t.Fatalf("redistest: cluster not ok on %s: %v %s", addr, err, firstLine(info))
			}
			time.Sleep(50 * time.Millisecond)
		}
		cl.Close()
	}
	// Every master must answer through a cluster client, and every
	// replica be in sync, before clients come.
	cc := goredis.NewClusterClient(&goredis.ClusterOptions{Addrs: addrs})
	defer cc.Close()
	for {
		err := cc.ForEachMaster(context.Background(), func(ctx context.Context, m *goredis.Client) error {
			return m.Ping(ctx).Err()
		})
		if err == nil && replicas > 0 {
			err = cc.ForEachSlave(context.Background(), func(ctx context.Context, r *goredis.Client) error {
				info, err := r.Info(ctx, "replication").Result()
				if err == nil && !strings.Contains(info, "master_link_status:up") {
					err = fmt.Errorf("replica %s not in sync", r.Options().Addr)
				}
				return err
			})
		}
		slots, _ := cc.ClusterSlots(context.Background()).Result()
		if err == nil && len(slots) == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("redistest: cluster slots not settled: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return c
}

// MasterOf returns the port of the master that serves key's slot.
func (c *Cluster) MasterOf(t testing.TB, key string) int {
	t.Helper()
	cc := goredis.NewClusterClient(&goredis.ClusterOptions{Addrs: c.addrs()})
	defer cc.Close()
	slot, err := cc.ClusterKeySlot(context.Background(), key).Result()
	if err != nil {
		t.Fatalf("redistest: CLUSTER KEYSLOT: %v", err)
	}
	slots, err := cc.ClusterSlots(context.Background()).Result()
	if err != nil {
		t.Fatalf("redistest: CLUSTER SLOTS: %v", err)
	}
	for _, s := range slots {
		if int64(s.Start) <= slot && slot <= int64(s.End) {
			_, port, _ := net.SplitHostPort(s.Nodes[0].Addr)
			p, _ := strconv.Atoi(port)
			return p
		}
	}
	t.Fatalf("redistest: no master serves slot %d", slot)
	return 0
}

// MoveSlot moves the slot of key, with its keys, from its master to the
// master on port to (as a resharding does: IMPORTING, MIGRATING, MIGRATE,
// then SETSLOT NODE on every master).
func (c *Cluster) MoveSlot(t testing.TB, key string, to int) {
	t.Helper()
	ctx := context.Background()
	from := c.MasterOf(t, key)
	node := func(port int) *goredis.Client {
		return goredis.NewClient(&goredis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", port)})
	}
	src, dst := node(from), node(to)
	defer src.Close()
	defer dst.Close()
	must := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("redistest: moving the slot of %s: %s: %v", key, what, err)
		}
	}
	slot, err := src.ClusterKeySlot(ctx, key).Result()
	must("CLUSTER KEYSLOT", err)
	srcID, err := src.ClusterMyID(ctx).Result()
	must("CLUSTER MYID", err)
	dstID, err := dst.ClusterMyID(ctx).Result()
	must("CLUSTER MYID", err)
	must("IMPORTING", dst.Do(ctx, "CLUSTER", "SETSLOT", slot, "IMPORTING", srcID).Err())
	must("MIGRATING", src.Do(ctx, "CLUSTER", "SETSLOT", slot, "MIGRATING", dstID).Err())
	for {
		keys, err := src.ClusterGetKeysInSlot(ctx, int(slot), 100).Result()
		must("GETKEYSINSLOT", err)
		if len(keys) == 0 {
			break
		}
		args := []any{"MIGRATE", "127.0.0.1", to, "", 0, 5000, "KEYS"}
		for _, k := range keys {
			args = append(args, k)
		}
		must("MIGRATE", src.Do(ctx, args...).Err())
	}
	for _, p := range []int{to, from} {
		n := node(p)
		must("SETSLOT NODE", n.Do(ctx, "CLUSTER", "SETSLOT", slot, "NODE", dstID).Err())
		n.Close()
	}
	for _, p := range c.Ports {
		if p != to && p != from && c.cmds[p] != nil {
			n := node(p)
			n.Do(ctx, "CLUSTER", "SETSLOT", slot, "NODE", dstID)
			n.Close()
		}
	}
}

// StopNode stops the node on port.
func (c *Cluster) StopNode(port int) {
	if cmd := c.cmds[port]; cmd != nil {
		stop(cmd)
		delete(c.cmds, port)
	}
}

func firstLine(s string) string {
	sc := bufio.NewScanner(strings.NewReader(s))
	sc.Scan()
	return sc.Text()
}

// URL returns the cluster's URL: redis+cluster://h1:p1,h2:p2,h3:p3.
func (c *Cluster) URL() string { return "redis+cluster://" + strings.Join(c.addrs(), ",") }

func (c *Cluster) addrs() []string {
	var addrs []string
	for _, p := range c.Ports {
		addrs = append(addrs, fmt.Sprintf("127.0.0.1:%d", p))
	}
	return addrs
}

// freePort returns a port that is free now.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("redistest: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// freeClusterPort returns a free port p below 55536 whose bus port
// p+10000 is free too.
func freeClusterPort(t testing.TB) int {
	t.Helper()
	for range 100 {
		var b [2]byte
		rand.Read(b[:])
		p := 20000 + int(b[0])<<8%30000 + int(b[1])
		l1, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			continue
		}
		l2, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p+10000))
		l1.Close()
		if err != nil {
			continue
		}
		l2.Close()
		return p
	}
	t.Fatal("redistest: no free port pair")
	return 0
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
