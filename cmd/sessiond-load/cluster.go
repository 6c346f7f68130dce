package main

// -redis-cluster: a private three-master Redis Cluster for one run, made
// as store/redis/redistest makes its own (redis-server --cluster-enabled
// yes on free ports, then redis-cli --cluster create), and stopped at the
// end.

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

type privateCluster struct {
	dir   string
	addrs []string
	cmds  []*exec.Cmd
}

// startCluster starts three masters without replicas, with nothing on
// disk (appendonly no, no snapshots: as the shared server), and waits
// until every node tells cluster_state:ok.
func startCluster() (*privateCluster, error) {
	dir, err := os.MkdirTemp("", "sessiond-load-cluster-")
	if err != nil {
		return nil, err
	}
	c := &privateCluster{dir: dir}
	fail := func(err error) (*privateCluster, error) {
		c.Stop()
		return nil, err
	}
	for i := range 3 {
		port, err := freeClusterPort()
		if err != nil {
			return fail(err)
		}
		d := filepath.Join(dir, strconv.Itoa(i))
		if err := os.Mkdir(d, 0o700); err != nil {
			return fail(err)
		}
		cmd := exec.Command("redis-server", "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", d,
			"--save", "", "--appendonly", "no", "--daemonize", "no", "--logfile", filepath.Join(d, "redis.log"),
			"--cluster-enabled", "yes", "--cluster-config-file", filepath.Join(d, "nodes.conf"))
		if err := cmd.Start(); err != nil {
			return fail(fmt.Errorf("starting redis-server: %w", err))
		}
		c.cmds = append(c.cmds, cmd)
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		c.addrs = append(c.addrs, addr)
		if err := waitFor(addr, func(ctx context.Context, cl *goredis.Client) bool { return cl.Ping(ctx).Err() == nil }); err != nil {
			return fail(err)
		}
	}
	out, err := exec.Command("redis-cli", append(append([]string{"--cluster", "create"}, c.addrs...),
		"--cluster-replicas", "0", "--cluster-yes")...).CombinedOutput()
	if err != nil {
		return fail(fmt.Errorf("redis-cli --cluster create: %v\n%s", err, out))
	}
	for _, addr := range c.addrs {
		if err := waitFor(addr, func(ctx context.Context, cl *goredis.Client) bool {
			info, err := cl.ClusterInfo(ctx).Result()
			return err == nil && strings.Contains(info, "cluster_state:ok") && strings.Contains(info, "cluster_known_nodes:3")
		}); err != nil {
			return fail(err)
		}
	}
	return c, nil
}

// waitFor asks ok of the node at addr until it says yes, for 30 s at most.
func waitFor(addr string, ok func(context.Context, *goredis.Client) bool) error {
	cl := goredis.NewClient(&goredis.Options{Addr: addr, MaxRetries: -1})
	defer cl.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		yes := ok(ctx, cl)
		cancel()
		if yes {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("redis-server at %s not ready", addr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// URL is the cluster's store URL.
func (c *privateCluster) URL() string { return "redis+cluster://" + strings.Join(c.addrs, ",") }

// Stop stops the nodes (SIGTERM, SIGKILL after 10 s) and removes their
// directory.
func (c *privateCluster) Stop() {
	for _, cmd := range c.cmds {
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
	c.cmds = nil
	os.RemoveAll(c.dir)
}

// freeClusterPort returns a free port p below 55536 whose cluster bus
// port p+10000 is free too.
func freeClusterPort() (int, error) {
	for range 100 {
		l1, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		p := l1.Addr().(*net.TCPAddr).Port
		if p >= 55536 {
			l1.Close()
			continue
		}
		l2, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p+10000))
		l1.Close()
		if err != nil {
			continue
		}
		l2.Close()
		return p, nil
	}
	return 0, fmt.Errorf("no free port pair for a cluster node")
}

// redisConfig returns a CONFIG GET parameter of the server (of a master
// of a cluster), or "?".
func redisConfig(ctx context.Context, rdb goredis.UniversalClient, name string) string {
	var mu sync.Mutex
	v := "?"
	eachMaster(ctx, rdb, func(ctx context.Context, c *goredis.Client) error {
		if m, err := c.ConfigGet(ctx, name).Result(); err == nil && m[name] != "" {
			mu.Lock()
			v = m[name]
			mu.Unlock()
		}
		return nil
	})
	return v
}
