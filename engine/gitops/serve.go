package gitops

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/volt-cli/volt/engine/flock"
	"github.com/volt-cli/volt/sdk/logfile"
	"github.com/volt-cli/volt/sdk/proc"
)

// DefaultAddr is where serve listens by default (loopback: put a reverse
// proxy with TLS in front to take webhooks from the Internet).
const DefaultAddr = "127.0.0.1:9090"

// Backoff bounds of the poll loop after the repository could not be reached.
const (
	minBackoff = 2 * time.Second
	maxBackoff = 5 * time.Minute
)

// Server takes webhooks at /hooks/NAME and runs one poll loop per source.
type Server struct {
	*Manager
	// Addr is the listen address (default DefaultAddr).
	Addr string
	// Rescan is how often the sources are re-read (default 2 s).
	Rescan time.Duration

	replay  *replayCache
	ctx     context.Context // the poll loops' context
	mu      sync.Mutex
	workers map[string]*worker
	running sync.WaitGroup // the poll loops
}

type worker struct {
	cancel   context.CancelFunc
	trigger  chan struct{}
	interval Duration
}

// ServeInfo is serve.json: which process serves, where.
type ServeInfo struct {
	PID       int       `json:"pid"`
	StartTime uint64    `json:"startTime"`
	Addr      string    `json:"addr"`
	Started   time.Time `json:"started"`
}

// ServeStatus says whether a serve process runs for this state root.
type ServeStatus struct {
	Running bool `json:"running"`
	// Died is set when serve.json names a process that is gone (killed
	// or crashed without cleaning up).
	Died bool `json:"died,omitempty"`
	ServeInfo
	Log string `json:"log"`
}

func (st *Store) serveInfoPath() string { return filepath.Join(st.Dir, "serve.json") }

// ServeLog is the log file of a detached serve.
func (st *Store) ServeLog() string { return filepath.Join(st.Dir, "serve.log") }

// ServeStatus reads serve.json and checks that its process is alive.
func (st *Store) ServeStatus() ServeStatus {
	var s ServeStatus
	s.Log = st.ServeLog()
	if err := readJSON(st.serveInfoPath(), &s.ServeInfo); err != nil || s.PID == 0 {
		return s
	}
	s.Running = proc.Alive(s.PID, s.StartTime)
	s.Died = !s.Running
	return s
}

// ErrServeRunning means a serve process runs already for this state root.
var ErrServeRunning = errors.New("volt gitops serve is already running")

// Run listens and serves until ctx ends. ready is called with the bound
// address once webhooks are taken. Only one Run per state root at a time.
func (s *Server) Run(ctx context.Context, ready func(addr string)) error {
	if err := os.MkdirAll(s.Dir, 0o700); err != nil {
		return err
	}
	lctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	lock, err := flock.Acquire(lctx, filepath.Join(s.Dir, "serve.lock"), true, nil)
	cancel()
	if err != nil {
		if st := s.ServeStatus(); st.Running {
			return fmt.Errorf("%w (pid %d, %s)", ErrServeRunning, st.PID, st.Addr)
		}
		return fmt.Errorf("%w: %v", ErrServeRunning, err)
	}
	defer lock.Release()
	addr := s.Addr
	if addr == "" {
		addr = DefaultAddr
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", addr, err)
	}
	s.replay = newReplayCache()
	wctx, stopWorkers := context.WithCancel(ctx)
	defer stopWorkers()
	s.mu.Lock()
	s.ctx, s.workers = wctx, map[string]*worker{}
	s.mu.Unlock()
	mux := http.NewServeMux()
	mux.HandleFunc("/hooks/{name}", s.hook)
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, MaxHeaderBytes: 64 << 10}
	info := ServeInfo{PID: os.Getpid(), Addr: ln.Addr().String(), Started: time.Now().UTC().Truncate(time.Second)}
	if st, err := proc.Read(info.PID); err == nil {
		info.StartTime = st.StartTime
	}
	if err := writeJSON(s.serveInfoPath(), info); err != nil {
		ln.Close()
		return err
	}
	defer os.Remove(s.serveInfoPath())
	s.log().Info("gitops: serving", "addr", info.Addr, "pid", info.PID)
	if ready != nil {
		ready(info.Addr)
	}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	rescan := s.Rescan
	if rescan <= 0 {
		rescan = 2 * time.Second
	}
	s.scan(wctx)
	t := time.NewTicker(rescan)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			sctx, c := context.WithTimeout(context.Background(), 5*time.Second)
			defer c()
			hs.Shutdown(sctx)
			stopWorkers()
			s.running.Wait() // a sync in flight finishes writing its state
			return nil
		case err := <-errc:
			stopWorkers()
			s.running.Wait()
			return err
		case <-t.C:
			s.scan(wctx)
		}
	}
}

// scan starts a poll loop for each new source, passes changed intervals
// to the loops and stops the loops of removed sources.
func (s *Server) scan(ctx context.Context) {
	srcs, err := s.List()
	if err != nil {
		s.log().Warn("gitops: list sources", "err", err)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	live := map[string]bool{}
	for _, src := range srcs {
		live[src.Name] = true
		w := s.workers[src.Name]
		switch {
		case w == nil:
			s.startLocked(ctx, src)
		case w.interval != src.Interval:
			// The new interval applies from a sync now; a build in
			// flight is not interrupted.
			w.interval = src.Interval
			select {
			case w.trigger <- struct{}{}:
			default:
			}
		}
	}
	for name, w := range s.workers {
		if !live[name] {
			w.cancel()
			delete(s.workers, name)
		}
	}
}

func (s *Server) startLocked(ctx context.Context, src *Source) *worker {
	wctx, cancel := context.WithCancel(ctx)
	w := &worker{cancel: cancel, trigger: make(chan struct{}, 1), interval: src.Interval}
	s.workers[src.Name] = w
	s.running.Add(1)
	go func() {
		defer s.running.Done()
		s.loop(wctx, src.Name, w)
	}()
	return w
}

// Trigger asks the source's loop to sync now. Triggers that arrive while a
// sync runs collapse into one more sync: the latest head wins.
func (s *Server) Trigger(name string) {
	s.mu.Lock()
	w := s.workers[name]
	s.mu.Unlock()
	if w == nil {
		return
	}
	select {
	case w.trigger <- struct{}{}:
	default:
	}
}

// loop polls one source: at once, then every interval, with backoff while
// the repository cannot be reached; a trigger syncs at once.
func (s *Server) loop(ctx context.Context, name string, w *worker) {
	delay := time.Duration(0)
	failures := 0
	for {
		timer := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-timer.C:
		case <-w.trigger:
			timer.Stop()
		}
		res, err := s.Sync(ctx, name, SyncOptions{})
		if ctx.Err() != nil {
			return
		}
		s.mu.Lock()
		interval := time.Duration(w.interval)
		s.mu.Unlock()
		switch {
		case errors.Is(err, ErrNoSource):
			return
		case errors.Is(err, ErrUnreachable):
			failures++
			delay = backoff(failures, interval)
			s.log().Warn("gitops: repository unreachable", "source", name, "retry", delay, "err", err)
		case err != nil:
			failures = 0
			s.log().Warn("gitops: sync failed", "source", name, "err", err)
			delay = interval
		default:
			failures = 0
			delay = interval
			if res != nil {
				s.log().Debug("gitops: "+res.Message, "source", name)
			}
		}
		if delay == 0 {
			delay = 1<<63 - 1 // no polling: wait for webhooks
		}
	}
}

// backoff is the wait after n consecutive failures: doubling from
// minBackoff, at most maxBackoff and never longer than the interval.
func backoff(n int, interval time.Duration) time.Duration {
	d := minBackoff
	for i := 1; i < n && d < maxBackoff; i++ {
		d *= 2
	}
	d = min(d, maxBackoff)
	if interval > 0 && d > interval {
		d = interval
	}
	return d
}

// hook serves POST /hooks/NAME.
func (s *Server) hook(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		http.Error(w, "webhooks are POST requests", http.StatusMethodNotAllowed)
		return
	}
	src, err := s.Get(name)
	if err != nil {
		http.Error(w, "no such source", http.StatusNotFound)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxWebhookBody))
	if err != nil {
		http.Error(w, fmt.Sprintf("body larger than %d bytes", MaxWebhookBody), http.StatusRequestEntityTooLarge)
		return
	}
	var secret []byte
	if src.WebhookSecretFile != "" {
		b, err := os.ReadFile(src.WebhookSecretFile)
		if err != nil {
			s.log().Error("gitops: webhook secret", "source", name, "err", err)
			http.Error(w, "webhook secret unavailable", http.StatusInternalServerError)
			return
		}
		secret = []byte(strings.TrimRight(string(b), "\r\n"))
	}
	d, err := Authenticate(r.Header, body, secret)
	if err != nil {
		code := http.StatusForbidden
		if errors.Is(err, ErrNoWebhookSignature) {
			code = http.StatusUnauthorized
		}
		if len(secret) == 0 {
			err = errors.New("webhooks are not enabled for this source (no --webhook-secret-file)")
		}
		s.log().Warn("gitops: webhook refused", "source", name, "remote", r.RemoteAddr, "err", err)
		http.Error(w, err.Error(), code)
		return
	}
	if d.ID != "" && !s.replay.first(name+"\x00"+d.ID, time.Now()) {
		s.log().Warn("gitops: webhook replayed", "source", name, "delivery", d.ID, "remote", r.RemoteAddr)
		http.Error(w, "delivery "+d.ID+" was seen already", http.StatusConflict)
		return
	}
	switch {
	case d.Ping():
		io.WriteString(w, "pong\n")
		return
	case d.Ref != "" && d.Ref != "refs/heads/"+src.Branch:
		w.WriteHeader(http.StatusAccepted)
		fmt.Fprintf(w, "ignored: %s is not %s\n", d.Ref, src.Branch)
		return
	}
	s.mu.Lock()
	if s.workers[name] == nil {
		s.startLocked(s.ctx, src)
	}
	s.mu.Unlock()
	s.Trigger(name)
	s.log().Info("gitops: webhook accepted", "source", name, "provider", d.Provider, "delivery", d.ID)
	w.WriteHeader(http.StatusAccepted)
	io.WriteString(w, "accepted: fetching\n")
}

// Detach starts exe with args as a detached serve process (own session,
// output to the serve log) and waits until it serves or exits.
func (st *Store) Detach(exe string, args []string, env []string) (ServeStatus, error) {
	if cur := st.ServeStatus(); cur.Running {
		return cur, fmt.Errorf("%w (pid %d, %s)", ErrServeRunning, cur.PID, cur.Addr)
	}
	if err := os.MkdirAll(st.Dir, 0o700); err != nil {
		return ServeStatus{}, err
	}
	logf, err := os.OpenFile(st.ServeLog(), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return ServeStatus{}, err
	}
	defer logf.Close()
	off, _ := logf.Seek(0, io.SeekEnd)
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		return ServeStatus{}, err
	}
	defer devnull.Close()
	cmd := exec.Command(exe, args...)
	cmd.Env = env
	cmd.Stdin, cmd.Stdout, cmd.Stderr = devnull, logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return ServeStatus{}, err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.After(15 * time.Second)
	for {
		if cur := st.ServeStatus(); cur.Running && cur.PID == cmd.Process.Pid {
			return cur, nil
		}
		select {
		case err := <-exited:
			b, _ := os.ReadFile(st.ServeLog())
			if int64(len(b)) >= off {
				b = b[off:]
			}
			return ServeStatus{}, fmt.Errorf("serve exited (%v): %s", err, strings.TrimSpace(string(logfile.LastLines(b, 3))))
		case <-deadline:
			return ServeStatus{}, fmt.Errorf("serve (pid %d) did not start within 15 s; see %s", cmd.Process.Pid, st.ServeLog())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// StopServe stops a running serve process (SIGTERM, then waits up to 10 s).
// It reports whether one was running.
func (st *Store) StopServe(ctx context.Context) (bool, error) {
	cur := st.ServeStatus()
	if !cur.Running {
		return false, nil
	}
	if err := syscall.Kill(cur.PID, syscall.SIGTERM); err != nil {
		return true, fmt.Errorf("stop serve (pid %d): %w", cur.PID, err)
	}
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); {
		if !proc.Alive(cur.PID, cur.StartTime) {
			return true, nil
		}
		select {
		case <-ctx.Done():
			return true, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return true, fmt.Errorf("serve (pid %d) did not stop within 10 s", cur.PID)
}
