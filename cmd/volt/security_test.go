package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/volt-cli/volt/sdk"
)

// securityProbe prints NAME:ok or NAME:denied for each probe, then DONE.
const securityProbe = `try() { n=$1; shift; if "$@" >/dev/null 2>&1; then echo "$n:ok"; else echo "$n:denied"; fi; }; `

func TestWorkloadSecurity(t *testing.T) {
	needDeploy(t)
	e := newEnv(t)
	stack := filepath.Join(e.dir, "stack")
	cmd := func(probes string) string {
		return `["/bin/sh", "-c", '` + securityProbe + probes + `; echo DONE; exec sleep 1000']`
	}
	writeFiles(t, stack, map[string]string{
		"volt-compose.yaml": `version: "1"
name: sec
containers:
  dflt:
    image: images/busybox.tar.gz
    command: ` + cmd(`try mount busybox mount -t tmpfs none /tmp; try ping busybox ping -c 1 -W 2 127.0.0.1; try etc touch /etc/x; try userns busybox unshare -U true`) + `
  noraw:
    image: images/busybox.tar.gz
    cap_drop: [NET_RAW]
    command: ` + cmd(`try ping busybox ping -c 1 -W 2 127.0.0.1`) + `
  ro:
    image: images/busybox.tar.gz
    read_only: true
    tmpfs: [/scratch]
    command: ` + cmd(`try etc touch /etc/x; try scratch touch /scratch/x`) + `
  ll:
    image: images/busybox.tar.gz
    volumes: ["lldata:/data"]
    security: {landlock: default}
    command: ` + cmd(`try etc touch /etc/x; try tmp touch /tmp/x; try data touch /data/x`) + `
  open:
    image: images/busybox.tar.gz
    security: {landlock: none, seccomp: unconfined}
    command: ` + cmd(`try etc touch /etc/x; try userns busybox unshare -U true`) + `
volumes:
  lldata: {}
`,
		"volt.star": `bundle(name = "sec", version = "1.0.0", platforms = ["linux/amd64"])
constellation("volt-compose.yaml")
`,
	})
	writeImage(t, stack)
	bundlePath := filepath.Join(e.dir, "sec.vbundle")
	e.must("bundle", "create", stack, "-o", bundlePath)

	// What each service asks for, before import.
	r := e.must("bundle", "inspect", bundlePath, "--show-security")
	for _, want := range []string{"ll:", "landlock:          default", "seccomp:           unconfined", "read_only root:    yes (tmpfs: /scratch)"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("bundle inspect --show-security lacks %q:\n%s", want, r.stdout)
		}
	}

	defer func() {
		if t.Failed() {
			for _, s := range []string{"ro", "ll", "dflt"} {
				t.Logf("%s: %+v", s, e.run("container", "inspect", "sec/"+s))
			}
		}
		e.run("stack", "destroy", "sec")
	}()
	e.must("bundle", "import", bundlePath)
	logOf := func(svc string) string {
		var log string
		waitFor(t, func() bool {
			log = e.run("logs", "sec/"+svc).stdout
			return strings.Contains(log, "DONE")
		}, svc+" done")
		return log
	}
	expect := map[string][]string{
		// docker's seccomp profile refuses unshare without CAP_SYS_ADMIN;
		// the kernel (and nspawn's own filter) would allow a user namespace.
		"dflt":  {"mount:denied", "ping:ok", "etc:ok", "userns:denied"},
		"noraw": {"ping:denied"},
		"ro":    {"etc:denied", "scratch:ok"},
		"open":  {"etc:ok", "userns:ok"},
	}
	if sdk.LandlockABI() > 0 {
		expect["ll"] = []string{"etc:denied", "tmp:ok", "data:ok"}
	}
	for svc, wants := range expect {
		log := logOf(svc)
		for _, w := range wants {
			if !strings.Contains(log, w) {
				t.Errorf("%s: want %s in its log:\n%s", svc, w, log)
			}
		}
	}
	if sdk.LandlockABI() == 0 {
		return
	}
	if _, err := os.Stat(filepath.Join(e.dir, "root/volumes/sec/lldata/x")); err != nil {
		t.Errorf("the landlocked volume write did not land: %v", err)
	}

	// exec enters under the workload's policy.
	if r := e.run("container", "exec", "sec/ll", "--", "touch", "/etc/y"); r.code == 0 {
		t.Errorf("exec could write /etc under landlock default")
	}
	e.must("container", "exec", "sec/ll", "--", "touch", "/tmp/y")
	if r := e.run("container", "exec", "sec/dflt", "--", "busybox", "mount", "-t", "tmpfs", "none", "/tmp"); r.code == 0 {
		t.Errorf("exec could mount in a default container")
	}

	// What is enforced now.
	r = e.must("container", "inspect", "sec/ll", "-o", "json")
	var doc struct {
		Status struct {
			Security map[string]string `json:"security"`
		} `json:"status"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil {
		t.Fatalf("inspect -o json: %v\n%s", err, r.stdout)
	}
	enforced := doc.Status.Security["enforced"]
	if doc.Status.Security["landlock"] != "default" || doc.Status.Security["seccomp"] != "default" {
		t.Errorf("container inspect: asked-for policy %v", doc.Status.Security)
	}
	var rep sdk.InitReport
	if err := json.Unmarshal([]byte(enforced), &rep); err != nil || rep.Landlock == nil || !rep.Landlock.Enforced || !rep.Seccomp || !rep.NoNewPrivileges {
		t.Errorf("container inspect: security.enforced = %q (%v)", enforced, err)
	}
	for _, c := range rep.Capabilities {
		if c == "CAP_SYS_ADMIN" || c == "CAP_NET_ADMIN" {
			t.Errorf("enforced capabilities include %s: %v", c, rep.Capabilities)
		}
	}
}

func TestWorkloadSecurityRefusals(t *testing.T) {
	e := newEnv(t)
	stack := filepath.Join(e.dir, "stack")
	writeFiles(t, stack, map[string]string{
		"volt-compose.yaml": `version: "1"
name: priv
containers:
  tool:
    image: images/busybox.tar.gz
    privileged: true
    command: ["/bin/true"]
`,
		"volt.star": `bundle(name = "priv", version = "1.0.0", platforms = ["linux/amd64"])
constellation("volt-compose.yaml")
`,
	})
	writeImage(t, stack)
	bundlePath := filepath.Join(e.dir, "priv.vbundle")
	e.must("bundle", "create", stack, "-o", bundlePath)
	if r := e.must("bundle", "inspect", bundlePath); !strings.Contains(r.stdout, "PRIVILEGED: tool") {
		t.Errorf("bundle inspect does not flag the privileged service:\n%s", r.stdout)
	}
	r := e.run("bundle", "import", "--no-start", bundlePath)
	if r.code != exitUsage || !strings.Contains(r.stderr, "service tool") || !strings.Contains(r.stderr, "--allow-privileged") {
		t.Errorf("import of a privileged service: exit %d\n%s", r.code, r.stderr)
	}
	if r := e.must("stack", "list", "-o", "json"); strings.Contains(r.stdout, "priv") {
		t.Errorf("a refused import left a stack: %s", r.stdout)
	}
	if r := e.run("bundle", "import", "--security", "lax", bundlePath); r.code != exitUsage {
		t.Errorf("--security lax: exit %d", r.code)
	}

	// Profiles.
	prof := filepath.Join(e.dir, "web.yaml")
	os.WriteFile(prof, []byte("fs_execute: [/]\nfs_write: [/srv]\nnet_connect: [5432]\n"), 0o644)
	if r := e.must("security", "profile", "check", prof, "-o", "json"); !strings.Contains(r.stdout, `"net_connect"`) || !strings.Contains(r.stdout, `"restrict_net": true`) {
		t.Errorf("profile check -o json:\n%s", r.stdout)
	}
	os.WriteFile(prof, []byte("fs_wirte: [/srv]\n"), 0o644)
	if r := e.run("security", "profile", "check", prof); r.code != exitUsage || !strings.Contains(r.stderr, "fs_wirte") {
		t.Errorf("profile check of a bad file: exit %d: %s", r.code, r.stderr)
	}
	if r := e.must("security", "profile", "list"); !strings.Contains(r.stdout, "strict") {
		t.Errorf("profile list:\n%s", r.stdout)
	}
	if r := e.run("security", "profile", "show", "nope"); r.code != exitNotFound {
		t.Errorf("profile show nope: exit %d", r.code)
	}
}
