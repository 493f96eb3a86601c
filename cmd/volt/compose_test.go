package main

import (
	"archive/zip"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const dockerCompose = `services:
  web:
    image: images/busybox.tar.gz
    command: ["/bin/sh", "-c", "echo env=$$APP_ENV greeting=${GREETING:-dflt} alt=${GREETING:+set}; exec sleep 1000"]
    environment:
      APP_ENV: staging
    container_name: web1
    labels: {a: b}
    privileged: true
    cap_add: [NET_ADMIN]
    tty: true
    deploy:
      replicas: 2
    networks:
      front:
        aliases: [www]
networks:
  front: {}
`

// TestComposeFileWarnings: -f takes a docker-compose file, and the keys
// Volt ignores are warned about once each with file:line.
func TestComposeFileWarnings(t *testing.T) {
	e := newEnv(t)
	dir := filepath.Join(e.dir, "app")
	writeFiles(t, dir, map[string]string{"docker-compose.yml": dockerCompose})
	writeImage(t, dir)
	// Without -f the hint names the file; with it, the file is built.
	r := e.runIn(dir, "bundle", "create", "--dry-run")
	if r.code != exitUsage || !strings.Contains(r.stderr, "pass -f docker-compose.yml") {
		t.Fatalf("create without -f: exit %d: %s", r.code, r.stderr)
	}
	r = e.runIn(dir, "bundle", "create", "-f", "docker-compose.yml", "--dry-run")
	if r.code != 0 {
		t.Fatalf("create -f docker-compose.yml: exit %d: %s", r.code, r.stderr)
	}
	for _, want := range []string{
		"docker-compose.yml:7:5: services.web.container_name: not supported by Volt; ignored",
		"docker-compose.yml:8:5: services.web.labels:",
		"docker-compose.yml:9:5: services.web.privileged:",
		"docker-compose.yml:10:5: services.web.cap_add:",
		"docker-compose.yml:11:5: services.web.tty:",
		"docker-compose.yml:13:17: services.web.deploy.replicas:",
		"docker-compose.yml:16:9: services.web.networks.front.aliases:",
	} {
		if n := strings.Count(r.stderr, want); n != 1 {
			t.Errorf("warning %q printed %d times:\n%s", want, n, r.stderr)
		}
	}
	// compose.yaml from another directory, by absolute path.
	writeFiles(t, dir, map[string]string{"compose.yaml": dockerCompose})
	if r := e.run("bundle", "create", "-f", filepath.Join(dir, "compose.yaml"), "--dry-run"); r.code != 0 {
		t.Errorf("create -f /abs/compose.yaml: exit %d: %s", r.code, r.stderr)
	}
	// recipe check warns too.
	if r := e.runIn(dir, "recipe", "check", "-f", "compose.yaml"); !strings.Contains(r.stderr, "compose.yaml:7:5: services.web.container_name") {
		t.Errorf("recipe check -f compose.yaml: exit %d: %s", r.code, r.stderr)
	}
}

// TestMissingImagePointsAtUserFile: an image that is not there is reported
// at the user's file and line, not inside the embedded recipe.
func TestMissingImagePointsAtUserFile(t *testing.T) {
	e := newEnv(t)
	dir := filepath.Join(e.dir, "app")
	writeFiles(t, dir, map[string]string{"volt-compose.yaml": `version: "1"
name: app
containers:
  web:
    image: images/missing.tar.gz
`})
	r := e.run("bundle", "create", dir, "--dry-run")
	if r.code != exitUsage || !strings.Contains(r.stderr, "volt-compose.yaml:5:12:") || strings.Contains(r.stderr, "@volt//") {
		t.Errorf("missing image: exit %d: %s", r.code, r.stderr)
	}
}

// TestComposeInterpolation: $$ is a literal $ and ${VAR:-d}/${VAR:+alt}
// follow the compose specification in a deployed command.
func TestComposeInterpolation(t *testing.T) {
	needDeploy(t)
	e := newEnv(t)
	dir := filepath.Join(e.dir, "app")
	writeFiles(t, dir, map[string]string{"docker-compose.yml": strings.Replace(dockerCompose, "services:", "name: interp\nservices:", 1)})
	writeImage(t, dir)
	out := filepath.Join(e.dir, "app.vbundle")
	e.must("bundle", "create", dir, "-f", "docker-compose.yml", "-o", out)
	defer e.run("stack", "destroy", "interp")
	for _, tc := range []struct{ set, want string }{
		{"", "env=staging greeting=dflt alt="},
		{"GREETING=hi", "env=staging greeting=hi alt=set"},
	} {
		e.run("stack", "destroy", "interp")
		args := []string{"bundle", "import", out}
		if tc.set != "" {
			args = append(args, "--set", tc.set)
		}
		e.must(args...)
		var log string
		waitFor(t, func() bool { log = e.run("logs", "interp/web").stdout; return strings.Contains(log, "env=") }, "the log")
		if !strings.Contains(log, tc.want) {
			t.Errorf("--set %q: log %q, want %q", tc.set, log, tc.want)
		}
	}
}

// TestSharedImageStoredOnce: two services on one image (and a copy of it)
// store it once in the bundle; the bundle verifies and both reference it.
func TestSharedImageStoredOnce(t *testing.T) {
	e := newEnv(t)
	dir := filepath.Join(e.dir, "app")
	writeFiles(t, dir, map[string]string{"volt-compose.yaml": `version: "1"
name: shared
containers:
  a:
    image: images/busybox.tar.gz
  b:
    image: images/busybox.tar.gz
  c:
    image: images/copy.tar.gz
`})
	writeImage(t, dir)
	img, err := os.ReadFile(filepath.Join(dir, "images/busybox.tar.gz"))
	if err != nil {
		t.Fatal(err)
	}
	writeFiles(t, dir, map[string]string{"images/copy.tar.gz": string(img)})
	out := filepath.Join(e.dir, "shared.vbundle")
	e.must("bundle", "create", dir, "-o", out)
	e.must("bundle", "verify", out)
	zr, err := zip.OpenReader(out)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	var images []string
	for _, f := range zr.File {
		if strings.HasPrefix(f.Name, "images/") {
			images = append(images, f.Name)
		}
	}
	if len(images) != 1 {
		t.Errorf("image entries %v, want one shared entry", images)
	}
	fi, _ := os.Stat(out)
	if fi.Size() > int64(len(img))*3/2 {
		t.Errorf("bundle is %d bytes for one %d-byte image used three times", fi.Size(), len(img))
	}
	var m struct {
		Services map[string]struct {
			Images map[string]struct{ Path string } `json:"images"`
		} `json:"services"`
	}
	if err := json.Unmarshal([]byte(e.must("bundle", "inspect", out, "--show-manifest").stdout), &m); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"a", "b", "c"} {
		if p := m.Services[s].Images["linux/amd64"].Path; len(images) == 1 && p != images[0] {
			t.Errorf("service %s image path %q, want %q", s, p, images[0])
		}
	}
}
