package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestGlobalFlagsAnywhere: global flags work before the command, as in docker.
func TestGlobalFlagsAnywhere(t *testing.T) {
	e := newEnv(t)
	root := filepath.Join(e.dir, "other-root")
	for _, args := range [][]string{
		{"--root", root, "ps"},
		{"--root=" + root, "stack", "list"},
		{"-o", "json", "ps"},
		{"-ojson", "ps", "-a"},
		{"-q", "ps"},
		{"--no-color", "--debug", "bundle", "list"},
		{"-o", "yaml", "version"},
	} {
		r := e.run(args...)
		if r.code != 0 {
			t.Errorf("volt %s: exit %d: %s", strings.Join(args, " "), r.code, r.stderr)
		}
	}
	if r := e.must("-o", "json", "ps"); strings.TrimSpace(r.stdout) != "[]" {
		t.Errorf("volt -o json ps: %q, want []", r.stdout)
	}
	// A state root that cannot be one shows the flag is used.
	if r := e.run("--root", "/etc/passwd/x", "ps"); !strings.Contains(r.stderr, "/etc/passwd/x/stacks") {
		t.Errorf("--root before the command was not used: %s", r.stderr)
	}
	if r := e.must("-o", "yaml", "version"); !strings.Contains(r.stdout, "version: ") {
		t.Errorf("-o yaml version: %q", r.stdout)
	}
	// A mistyped command still gets its did-you-mean after global flags.
	if r := e.run("--root", root, "pss"); r.code != exitUsage || !strings.Contains(r.stderr, `did you mean "ps"`) {
		t.Errorf("volt --root X pss: exit %d: %s", r.code, r.stderr)
	}
}

func TestVersionHelpCompletionMan(t *testing.T) {
	e := newEnv(t)
	v := e.must("version").stdout
	if r := e.must("--version"); r.stdout != v {
		t.Errorf("volt --version = %q, volt version = %q", r.stdout, v)
	}
	help := e.must("bundle", "create", "--help").stdout
	if r := e.must("help", "bundle", "create"); r.stdout != help {
		t.Errorf("volt help bundle create differs from --help:\n%s", r.stdout)
	}
	if r := e.run("help", "bundel"); r.code != exitUsage || !strings.Contains(r.stderr, "unknown command") {
		t.Errorf("volt help bundel: exit %d: %s", r.code, r.stderr)
	}
	for _, sh := range []string{"bash", "zsh", "fish"} {
		if r := e.must("completion", sh); !strings.Contains(r.stdout, "volt __complete") {
			t.Errorf("completion %s: %q", sh, r.stdout)
		}
	}
	if r := e.run("completion", "tcsh"); r.code != exitUsage {
		t.Errorf("completion tcsh: exit %d", r.code)
	}
	// The bash script completes through the binary itself.
	script := `source <(volt completion bash)
COMP_WORDS=(volt bundle cr); COMP_CWORD=2; _volt; echo "${COMPREPLY[@]}"
COMP_WORDS=(volt ps --a); COMP_CWORD=2; _volt; echo "${COMPREPLY[@]}"`
	cmd := exec.Command("bash", "-c", script)
	cmd.Env = append(os.Environ(), "PATH="+filepath.Dir(voltBin)+":"+os.Getenv("PATH"))
	out, err := cmd.CombinedOutput()
	if err != nil || string(out) != "create\n--all\n" {
		t.Errorf("bash completion: %v: %q", err, out)
	}
	dir := filepath.Join(e.dir, "man")
	e.must("__man", dir)
	page, err := os.ReadFile(filepath.Join(dir, "volt-bundle-create.1"))
	if err != nil || !strings.Contains(string(page), ".TH VOLT-BUNDLE-CREATE 1") || !strings.Contains(string(page), "\\-\\-dry\\-run") {
		t.Errorf("man page: %v\n%s", err, page)
	}
	if _, err := os.Stat(filepath.Join(dir, "volt-__man.1")); err == nil {
		t.Error("hidden command got a man page")
	}
}

// oneService writes a stack NAME with one container "web" that prints
// NAME-up and sleeps.
func oneService(t *testing.T, dir, name string) {
	t.Helper()
	serviceRunning(t, dir, name, "echo "+name+"-up; exec sleep 1000")
}

// serviceRunning writes a stack NAME with one container "web" running the
// shell script script.
func serviceRunning(t *testing.T, dir, name, script string) {
	t.Helper()
	writeFiles(t, dir, map[string]string{
		"volt-compose.yaml": `version: "1"
name: ` + name + `
containers:
  web:
    image: images/busybox.tar.gz
    command: ["/bin/sh", "-c", "` + script + `"]
`,
	})
	writeImage(t, dir)
}

// TestWorkloadNamesAndNotFound: ps shows STACK/SERVICE, every workload
// command takes each form ps shows, and "not found" is exit 4 everywhere.
func TestWorkloadNamesAndNotFound(t *testing.T) {
	needDeploy(t)
	e := newEnv(t)
	for _, n := range []string{"alpha", "beta"} {
		dir := filepath.Join(e.dir, n)
		oneService(t, dir, n)
		e.must("bundle", "create", dir) // into the local cache
		defer e.run("stack", "destroy", n)
		// bundle import NAME takes what bundle list shows.
		e.must("bundle", "import", n)
	}
	ps := e.must("ps").stdout
	for _, want := range []string{"alpha/web", "beta/web"} {
		if !strings.Contains(ps, want) {
			t.Errorf("ps does not show %s:\n%s", want, ps)
		}
	}
	if q := e.must("ps", "-q").stdout; q != "alpha/web\nbeta/web\n" {
		t.Errorf("ps -q = %q", q)
	}
	if y := e.must("ps", "-o", "yaml").stdout; !strings.Contains(y, "stack: alpha") || !strings.Contains(y, "pid: ") {
		t.Errorf("ps -o yaml:\n%s", y)
	}
	waitFor(t, func() bool { return strings.Contains(e.run("logs", "alpha/web").stdout, "alpha-up") }, "alpha's log")
	for _, ref := range []string{"alpha/web", "alpha-web"} {
		if r := e.must("container", "exec", ref, "--", "echo", "in-"+ref); !strings.Contains(r.stdout, "in-"+ref) {
			t.Errorf("exec %s: %q", ref, r.stdout)
		}
	}
	// A bare service name shared by two stacks is ambiguous, and says which to pick.
	if r := e.run("logs", "web"); r.code != exitFailure || !strings.Contains(r.stderr, "alpha/web") {
		t.Errorf("logs web (ambiguous): exit %d: %s", r.code, r.stderr)
	}
	e.must("stack", "destroy", "beta")
	if r := e.must("logs", "web"); !strings.Contains(r.stdout, "alpha-up") {
		t.Errorf("logs web (unique now): %q", r.stdout)
	}
	for _, args := range [][]string{
		{"logs", "nope/web"},
		{"container", "exec", "nope/web", "--", "true"},
		{"container", "shell", "nope/web"},
		{"container", "inspect", "nope/web"},
		{"container", "stop", "nope/web"},
		{"stack", "destroy", "nope"},
		{"bundle", "import", "nope"},
		{"bundle", "export", "nope", "-o", filepath.Join(e.dir, "x.vbundle")},
	} {
		if r := e.run(args...); r.code != exitNotFound {
			t.Errorf("volt %s: exit %d, want %d: %s", strings.Join(args, " "), r.code, exitNotFound, r.stderr)
		}
	}
}

// TestLogsFollowEnds: logs -f returns when the workload ends, and at once
// for a stopped one.
func TestLogsFollowEnds(t *testing.T) {
	needDeploy(t)
	e := newEnv(t)
	dir := filepath.Join(e.dir, "app")
	serviceRunning(t, dir, "brief", "echo started; sleep 2; echo finished")
	e.must("bundle", "create", dir)
	defer e.run("stack", "destroy", "brief")
	e.must("bundle", "import", "brief")
	done := make(chan result, 1)
	go func() { done <- e.run("logs", "-f", "brief/web") }()
	select {
	case r := <-done:
		if r.code != 0 || !strings.Contains(r.stdout, "started") || !strings.Contains(r.stdout, "finished") {
			t.Errorf("logs -f: exit %d, stdout %q, stderr %s", r.code, r.stdout, r.stderr)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("logs -f did not return after the workload ended")
	}
	// Stopped now: -f prints the log and returns.
	start := time.Now()
	if r := e.must("logs", "-f", "brief/web"); !strings.Contains(r.stdout, "finished") || time.Since(start) > 10*time.Second {
		t.Errorf("logs -f on a stopped workload: %q after %s", r.stdout, time.Since(start))
	}
}

// TestProgressOnlyOnTTY: progress bars go to stderr only when stderr is a
// terminal (script(1) gives the CLI one), and import has an unpacking bar.
func TestProgressOnlyOnTTY(t *testing.T) {
	needDeploy(t)
	if _, err := exec.LookPath("script"); err != nil {
		t.Skip("needs script(1)")
	}
	e := newEnv(t)
	dir := filepath.Join(e.dir, "app")
	oneService(t, dir, "bars")
	bundlePath := filepath.Join(e.dir, "bars.vbundle")
	e.must("bundle", "create", dir, "-o", bundlePath)
	defer e.run("stack", "destroy", "bars")
	inTTY := func(cmdline string) string {
		cmd := exec.Command("script", "-qec", cmdline, "/dev/null")
		cmd.Env = append(os.Environ(), e.vars...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("script -c %q: %v\n%s", cmdline, err, out)
		}
		return string(out)
	}
	// stdout a terminal, stderr a file: no bar anywhere.
	errFile := filepath.Join(e.dir, "stderr.log")
	inTTY(voltBin + " bundle import " + bundlePath + " 2>" + errFile)
	logged, _ := os.ReadFile(errFile)
	if strings.Contains(string(logged), "% |") {
		t.Errorf("a progress bar went to a log file:\n%q", logged)
	}
	if !strings.Contains(string(logged), "Deployed stack bars") {
		t.Errorf("import messages missing from stderr: %q", logged)
	}
	// stderr a terminal: the unpacking bar shows.
	e.must("stack", "destroy", "bars")
	if out := inTTY(voltBin + " bundle import " + bundlePath); !strings.Contains(out, "\runpacking ") || !strings.Contains(out, "% |") {
		t.Errorf("no unpacking bar on a terminal:\n%q", out)
	}
}

// TestExecTTY: container shell gets a real terminal (tty names /dev/pts/N,
// a prompt, the window size), Ctrl-C reaches the command, not the CLI, and
// the shell's exit code is volt's. tmux plays the user's terminal.
func TestExecTTY(t *testing.T) {
	needDeploy(t)
	if _, err := exec.LookPath("tmux"); err != nil {
		t.Skip("needs tmux")
	}
	e := newEnv(t)
	dir := filepath.Join(e.dir, "app")
	oneService(t, dir, "term")
	e.must("bundle", "create", dir)
	defer e.run("stack", "destroy", "term")
	e.must("bundle", "import", "term")
	waitFor(t, func() bool { return strings.Contains(e.run("logs", "term/web").stdout, "term-up") }, "the container")

	sock := filepath.Join(e.dir, "tmux.sock")
	status := filepath.Join(e.dir, "status")
	tmux := func(args ...string) string {
		out, err := exec.Command("tmux", append([]string{"-S", sock}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("tmux %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	envs := strings.Join(e.vars, " ")
	tmux("new-session", "-d", "-x", "90", "-y", "30", "sh", "-c",
		"env "+envs+" "+voltBin+" container shell term/web; echo volt-exit=$? > "+status+"; sleep 60")
	defer exec.Command("tmux", "-S", sock, "kill-server").Run()
	screen := func() string { return tmux("capture-pane", "-p", "-S", "-100") }
	expect := func(what string) {
		t.Helper()
		for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			if strings.Contains(screen(), what) {
				return
			}
		}
		t.Fatalf("timed out waiting for %q on the terminal:\n%s", what, screen())
	}
	expect(" #") // busybox sh prompts ("/ # ") on a terminal
	tmux("send-keys", "busybox tty; busybox stty size", "Enter")
	expect("/dev/pts/")
	expect("30 90")
	tmux("resize-window", "-x", "100", "-y", "40")
	time.Sleep(300 * time.Millisecond)
	tmux("send-keys", "busybox stty size", "Enter")
	expect("40 100")
	tmux("send-keys", `sleep 50; echo sl""ept`, "Enter")
	time.Sleep(500 * time.Millisecond)
	tmux("send-keys", "C-c")
	tmux("send-keys", "echo after-ctrl-c=$?", "Enter")
	expect("after-ctrl-c=130")
	if strings.Contains(screen(), "slept") {
		t.Error("Ctrl-C did not interrupt sleep")
	}
	tmux("send-keys", "exit 7", "Enter")
	waitFor(t, func() bool { b, _ := os.ReadFile(status); return len(b) > 0 }, "volt to end")
	if b, _ := os.ReadFile(status); strings.TrimSpace(string(b)) != "volt-exit=7" {
		t.Errorf("volt exit: %q\n%s", b, screen())
	}
	// exec -it accepts the docker flags; without a terminal -t still gives a pty.
	if r := e.must("container", "exec", "-i", "-t", "term/web", "--", "busybox", "tty"); !strings.Contains(r.stdout, "/dev/pts/") {
		t.Errorf("exec -it tty: %q", r.stdout)
	}
	if r := e.run("container", "exec", "term/web", "--", "busybox", "tty"); strings.Contains(r.stdout, "/dev/pts/") {
		t.Errorf("exec without -t got a terminal: %q", r.stdout)
	}
}
