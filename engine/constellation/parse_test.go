package constellation

import (
	"errors"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// stripInternal clears what Parse adds beyond the model, for comparisons.
func stripInternal(f *File) *File {
	c := *f
	c.Warnings, c.source, c.pos, c.docker = nil, "", nil, false
	return &c
}

func mustParse(t *testing.T, src string) *File {
	t.Helper()
	f, err := Parse("c.yaml", []byte(src))
	if err != nil {
		var e *Error
		if errors.As(err, &e) && e.Hint != "" {
			t.Fatalf("Parse: %v\nhint: %s", err, e.Hint)
		}
		t.Fatalf("Parse: %v", err)
	}
	return f
}

func TestParseExample(t *testing.T) {
	f, err := Load("testdata/example.volt-compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Warnings) != 0 {
		t.Errorf("warnings: %q", f.Warnings)
	}
	web, api := f.Containers["web"], f.Containers["api"]
	checks := []struct {
		name      string
		got, want any
	}{
		{"name", f.Name, "shop"},
		{"web image", web.Image, ImageRef{Single: "images/web"}},
		{"web env (merge key, number to string)", web.Environment, map[string]string{
			"TZ": "UTC", "LOG_LEVEL": "info", "APP_ENV": "${APP_ENV:-production}", "WORKERS": "4"}},
		{"web depends", web.DependsOn, map[string]Dependency{"api": {Condition: ServiceHealthy}}},
		{"web resources", *web.Resources, Resources{Memory: "256M", CPUs: 0.5}},
		{"web configs", web.Configs, []ConfigRef{{Source: "app", Target: "/etc/app.conf", Template: true}}},
		{"api image", api.Image, ImageRef{PerPlatform: map[string]string{
			"linux/amd64": "images/api-amd64.tar.gz", "linux/arm64": "images/api-arm64.tar.gz"}}},
		{"api command string", api.Command, []string{"/bin/sh", "-c", "exec /bin/api --listen :9000"}},
		{"api env list", api.Environment, map[string]string{"DB_HOST": "db", "DB_PORT": "5432", "DEBUG": "${DEBUG}"}},
		{"api ports", api.Ports, []string{"9000:9000"}},
		{"api depends list", api.DependsOn, map[string]Dependency{"db": {Condition: ServiceStarted}}},
		{"api healthcheck string", api.Healthcheck.Test, []string{"CMD-SHELL", "wget -qO- http://localhost:9000/health"}},
		{"vm", *f.VMs["db"], VM{Image: ImageRef{Single: "disks/db.qcow2"}, CPU: 2, Memory: "2G", Kernel: "boot/vmlinuz",
			Initrd: "boot/initrd.img", Cmdline: "console=ttyS0", Ports: []string{"5432:5432"}, Networks: []string{"back"},
			Environment: map[string]string{"PGDATA": "/var/lib/postgresql"},
			Configs:     []ConfigRef{{Source: "pg", Target: "/etc/postgresql/postgresql.conf"}}}},
		{"service", *f.Services["exporter"], HostService{Exec: []string{"/usr/bin/node_exporter", "--web.listen-address=:9100"},
			Environment: map[string]string{"GOMAXPROCS": "1"}, DependsOn: map[string]Dependency{"web": {Condition: ServiceStarted}}}},
		{"task", *f.Tasks["backup"], Task{Image: ImageRef{Single: "images/tools"}, Command: []string{"/bin/backup"},
			Schedule: "*-*-* 03:00:00", Environment: map[string]string{"TARGET": "/backup"}}},
		{"networks", f.Networks, map[string]*Network{"front": {Subnet: "10.20.0.0/24"}, "back": {Subnet: "10.30.0.0/24", Internal: true}}},
		{"volumes", f.Volumes, map[string]*Volume{"data": {}, "logs": {Driver: "local"}}},
		{"secrets", f.Secrets, map[string]*Secret{"db_password": {File: "secrets/db_password.txt"}, "api_token": {Environment: "API_TOKEN"}}},
	}
	for _, c := range checks {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s:\n got %#v\nwant %#v", c.name, c.got, c.want)
		}
	}
}

func TestParseForms(t *testing.T) {
	tests := []struct {
		name string
		src  string
		got  func(f *File) any
		want any
	}{
		{"env map with bool and null", "containers:\n  a:\n    image: i\n    environment: {X: true, Y: 1.5, Z: null}\n",
			func(f *File) any { return f.Containers["a"].Environment },
			map[string]string{"X": "true", "Y": "1.5", "Z": "${Z}"}},
		{"env list with = in value", "containers:\n  a:\n    image: i\n    environment: [\"A=b=c\", \"E=\"]\n",
			func(f *File) any { return f.Containers["a"].Environment }, map[string]string{"A": "b=c", "E": ""}},
		{"ports ints and strings", "containers:\n  a:\n    image: i\n    ports: [\"80:80\", 8080:8080]\n",
			func(f *File) any { return f.Containers["a"].Ports }, []string{"80:80", "8080:8080"}},
		{"ports long form", "containers:\n  a:\n    image: i\n    ports: [{target: 80, published: 8080, host_ip: 127.0.0.1, protocol: udp}, {target: 53}]\n",
			func(f *File) any { return f.Containers["a"].Ports }, []string{"127.0.0.1:8080:80/udp", "53:53"}},
		{"env_file string", "containers:\n  a:\n    image: i\n    env_file: .env\n",
			func(f *File) any { return f.Containers["a"].EnvFile }, []string{".env"}},
		{"env_file long form", "containers:\n  a:\n    image: i\n    env_file: [{path: a.env, required: false}, b.env]\n",
			func(f *File) any { return f.Containers["a"].EnvFile }, []string{"a.env", "b.env"}},
		{"entrypoint string", "containers:\n  a:\n    image: i\n    entrypoint: echo hi\n",
			func(f *File) any { return f.Containers["a"].Entrypoint }, []string{"/bin/sh", "-c", "echo hi"}},
		{"exec string", "services:\n  s:\n    exec: /usr/bin/x --y\n",
			func(f *File) any { return f.Services["s"].Exec }, []string{"/bin/sh", "-c", "/usr/bin/x --y"}},
		{"depends_on map without condition", "services:\n  s: {exec: [x]}\n  t:\n    exec: [x]\n    depends_on: {s: {}}\n",
			func(f *File) any { return f.Services["t"].DependsOn }, map[string]Dependency{"s": {Condition: ServiceStarted}}},
		{"depends_on null entry", "services:\n  s: {exec: [x]}\n  t:\n    exec: [x]\n    depends_on:\n      s:\n",
			func(f *File) any { return f.Services["t"].DependsOn }, map[string]Dependency{"s": {Condition: ServiceStarted}}},
		{"null volume and empty sections", "volumes:\n  v:\ncontainers:\n  a: {image: i, volumes: [\"v:/data\"]}\nnetworks: {}\n",
			func(f *File) any { return []any{f.Volumes, f.Networks} }, []any{map[string]*Volume{"v": {}}, map[string]*Network(nil)}},
		{"config short form", "configs: {app: {file: a.conf}}\ncontainers:\n  a: {image: i, configs: [app]}\n",
			func(f *File) any { return f.Containers["a"].Configs }, []ConfigRef{{Source: "app", Target: "/app"}}},
		{"healthcheck disable", "containers:\n  a:\n    image: i\n    healthcheck: {disable: true}\n",
			func(f *File) any { return f.Containers["a"].Healthcheck.Test }, []string{"NONE"}},
		{"x- keys ignored", "x-top: 1\ncontainers:\n  a: {image: i, x-note: hello}\n",
			func(f *File) any { return f.Containers["a"].Image.Single }, "i"},
		{"volt services with exec stay host services", "services:\n  s: {exec: [x]}\n",
			func(f *File) any { return []any{len(f.Services), len(f.Containers)} }, []any{1, 0}},
		{"vm kernel only", "vms:\n  v: {kernel: vmlinuz, memory: 512MiB}\n",
			func(f *File) any { return f.VMs["v"].Kernel }, "vmlinuz"},
		{"restart on-failure:N", "containers:\n  a: {image: i, restart: \"on-failure:3\"}\n",
			func(f *File) any { return f.Containers["a"].Restart }, "on-failure:3"},
		{"network_mode service", "containers:\n  a: {image: i}\n  b: {image: i, network_mode: \"service:a\"}\n",
			func(f *File) any { o, _ := Order(f); return o }, []string{"a", "b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := mustParse(t, tt.src)
			if got := tt.got(f); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %#v, want %#v", got, tt.want)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name, src, want, hint string
	}{
		{"unknown key did you mean", "containers:\n  web:\n    image: i\n    enviroment: {A: b}\n",
			`c.yaml:4:5: containers.web: unknown key "enviroment"`, `did you mean "environment"?`},
		{"unknown top-level key", "containres:\n  web: {image: i}\n",
			`c.yaml:1:1: unknown key "containres"`, `did you mean "containers"?`},
		{"unknown key far from any", "containers:\n  web: {image: i, zzzzzzzzzzzz: 1}\n",
			`c.yaml:2:19: containers.web: unknown key "zzzzzzzzzzzz"`, "known keys: cap_add, cap_drop, command, configs, depends_on, entrypoint, env_file, environment, healthcheck, image, network_mode, networks, ports, privileged, read_only, resources, restart, secrets, security, tmpfs, user, volumes, working_dir"},
		{"ports map", "containers:\n  web:\n    image: i\n    ports: {a: 1}\n",
			`c.yaml:4:12: containers.web.ports: want a list of strings like "8080:80", got a map`, ""},
		{"ports nested list", "containers:\n  web:\n    image: i\n    ports: [[1]]\n",
			`c.yaml:4:13: containers.web.ports: want a list of strings like "8080:80", got a list`, ""},
		{"image list", "containers:\n  web:\n    image: [a]\n",
			`c.yaml:3:12: containers.web.image: want a path or a map from platform to path, got a list`,
			`write "image: images/web" or "image: {linux/amd64: images/web-amd64.tar}"`},
		{"environment scalar", "containers:\n  web: {image: i, environment: 3}\n",
			`c.yaml:2:32: containers.web.environment: want a map or a list of "KEY=value", got a number`,
			`write "environment: {KEY: value}" or "environment: [KEY=value]"`},
		{"cpu string", "vms:\n  v: {image: d, cpu: two}\n",
			`c.yaml:2:22: vms.v.cpu: want an integer, got a string`, ""},
		{"internal not bool", "networks:\n  n: {internal: yes please}\n",
			`c.yaml:2:17: networks.n.internal: want true or false, got a string`, ""},
		{"containers list", "containers: [web]\n",
			`c.yaml:1:13: containers: want a map of container name to settings, got a list`, ""},
		{"top-level list", "- a\n",
			`c.yaml:1:1: want a map with keys like containers, vms, networks, got a list`, ""},
		{"duplicate key", "containers:\n  web: {image: i}\n  web: {image: j}\n",
			`c.yaml:3:3: containers: key "web" repeated (first at line 2)`, ""},
		{"syntax error", "containers:\n  web: {image: i\n",
			`c.yaml:1: YAML syntax: did not find expected ',' or '}'`, ""},
		{"empty", "", `c.yaml: empty file`, "a Constellation starts with keys such as name:, containers:, vms:"},
		{"two documents", "name: a\n---\nname: b\n", `c.yaml:2:1: more than one YAML document`, "keep one document per file (remove the ---)"},
		{"bad name", "containers:\n  Web: {image: i}\n", `c.yaml:2:3: containers: invalid name "Web"`,
			"use lower-case letters, digits, '_', '.', '-', starting with a letter or digit, at most 63 characters"},
		{"long name", "containers:\n  " + strings.Repeat("a", 64) + ": {image: i}\n", `c.yaml:2:3: containers: invalid name "` + strings.Repeat("a", 64) + `"`,
			"use lower-case letters, digits, '_', '.', '-', starting with a letter or digit, at most 63 characters"},
		{"name shared", "containers:\n  x: {image: i}\nvms:\n  x: {image: d}\n", `c.yaml:4:3: vms: name "x" already used by containers.x`,
			"names are shared by containers, vms, services and tasks; rename one"},
		{"no image", "containers:\n  web: {ports: [\"80:80\"]}\n", `c.yaml:2:3: containers.web: no image`,
			"add image: path/to/image (an OCI layout, a tarball, or a name in the local image store)"},
		{"depends on missing", "containers:\n  web:\n    image: i\n    depends_on: [db]\n", `c.yaml:4:18: containers.web.depends_on: no service "db"`,
			"depends_on names a container, vm or service of this file"},
		{"depends on missing map", "containers:\n  web:\n    image: i\n    depends_on:\n      db: {condition: service_healthy}\n", `c.yaml:5:7: containers.web.depends_on: no service "db"`,
			"depends_on names a container, vm or service of this file"},
		{"bad condition", "containers:\n  db: {image: i}\n  web:\n    image: i\n    depends_on:\n      db: {condition: service_healty}\n",
			`c.yaml:6:23: containers.web.depends_on.db.condition: unknown condition "service_healty"`, `did you mean "service_healthy"?`},
		{"undeclared network", "containers:\n  web: {image: i, networks: [front]}\n", `c.yaml:2:30: containers.web.networks[0]: undeclared network "front"`,
			"declare it under top-level networks:"},
		{"undeclared volume", "containers:\n  web:\n    image: i\n    volumes: [\"/a:/b\", \"data:/d\"]\n", `c.yaml:4:24: containers.web.volumes[1]: undeclared volume "data"`,
			"declare it under top-level volumes:, or use a path starting with / or ./ for a bind mount"},
		{"relative volume target", "containers:\n  web: {image: i, volumes: [\"./a:b\"]}\n", `c.yaml:2:29: containers.web.volumes[0]: target "b" is not an absolute path`,
			`write "source:/target[:ro]"`},
		{"undeclared config", "containers:\n  web:\n    image: i\n    configs: [{source: app, target: /a}]\n", `c.yaml:4:15: containers.web.configs[0]: undeclared config "app"`,
			"declare it under top-level configs:"},
		{"undeclared secret", "containers:\n  web: {image: i, secrets: [pw]}\n", `c.yaml:2:29: containers.web.secrets[0]: undeclared secret "pw"`,
			"declare it under top-level secrets:"},
		{"bad port", "containers:\n  web:\n    image: i\n    ports: [\"80:80\", \"80:99999\"]\n",
			`c.yaml:4:22: containers.web.ports[1]: port "80:99999": guest port "99999" is not a number from 1 to 65535`, `write "[ip:]host:guest[/tcp|udp]", e.g. "8080:80"`},
		{"port without host", "vms:\n  v:\n    image: d\n    ports: [80]\n",
			`c.yaml:4:13: vms.v.ports[0]: port "80": want host:guest`, `write "[ip:]host:guest[/tcp|udp]", e.g. "8080:80"`},
		{"bad memory", "containers:\n  web: {image: i, resources: {memory: 256X}}\n",
			`c.yaml:2:39: containers.web.resources.memory: invalid size "256X": unknown unit "X"`, "write a size such as 512M, 2G or 1GiB"},
		{"bad vm memory", "vms:\n  v: {image: d, memory: lots}\n", `c.yaml:2:25: vms.v.memory: invalid size "lots"`, "write a size such as 512M, 2G or 1GiB"},
		{"bad duration", "containers:\n  web:\n    image: i\n    healthcheck: {test: [CMD, x], interval: 5 seconds}\n",
			`c.yaml:4:45: containers.web.healthcheck.interval: invalid duration "5 seconds"`, "write a duration such as 5s, 1m30s"},
		{"vm without image or kernel", "vms:\n  db: {cpu: 2}\n", `c.yaml:2:3: vms.db: a VM needs an image or a kernel`,
			"add image: disk.qcow2, or kernel: (and initrd:) for direct kernel boot"},
		{"unknown restart", "containers:\n  web: {image: i, restart: allways}\n", `c.yaml:2:28: containers.web.restart: unknown policy "allways"`, `did you mean "always"?`},
		{"bad version", "version: \"2\"\n", `c.yaml:1:10: version: unsupported version "2"`, `write version: "1" (or leave it out)`},
		{"bad platform", "containers:\n  web:\n    image: {amd64: a.tar}\n", `c.yaml:3:13: containers.web.image: invalid platform "amd64"`, `platform keys are "os/arch", e.g. linux/amd64`},
		{"service without exec", "services:\n  s: {environment: {A: b}}\n", `c.yaml:2:3: services.s: no exec`, `add exec: ["/usr/bin/program", "arg"]`},
		{"bad env name", "containers:\n  web: {image: i, environment: [\"1A=b\"]}\n", `c.yaml:2:33: containers.web.environment: invalid variable name "1A"`,
			"names are letters, digits and '_', not starting with a digit"},
		{"secret without source", "secrets:\n  s: {}\n", `c.yaml:2:3: secrets.s: needs exactly one of file or environment`, "give exactly one of file: or environment:"},
		{"bad subnet", "networks:\n  n: {subnet: 10.0.0.0/33}\n", `c.yaml:2:15: networks.n.subnet: invalid subnet "10.0.0.0/33"`, "write a CIDR such as 10.20.0.0/24"},
		{"network_mode with networks", "networks: {n: {}}\ncontainers:\n  a: {image: i, networks: [n], network_mode: host}\n",
			`c.yaml:3:46: containers.a: network_mode and networks cannot both be set`, "remove networks: or network_mode:"},
		{"cycle", "services:\n  a: {exec: [x], depends_on: [b]}\n  b: {exec: [x], depends_on: [a]}\n",
			`c.yaml:2:31: dependency cycle: a -> b -> a`, "remove one of these depends_on entries"},
		{"alias of wrong type", "x-l: &l [1, 2]\ncontainers:\n  a: {image: i, environment: {A: *l}}\n",
			`c.yaml:1:6: containers.a.environment.A: want a string, got a list`, ""},
		{"docker unknown key", "services:\n  web:\n    image: nginx\n    prots: [\"80:80\"]\n", `c.yaml:4:5: services.web: unknown key "prots"`, `did you mean "ports"?`},
		{"docker include", "include: [a.yaml]\nservices:\n  web: {image: nginx}\n", `c.yaml:1:10: include: not supported by Volt`, "merge the included files into this one"},
		{"docker no image", "services:\n  web: {image: nginx}\n  api: {build: .}\n", `c.yaml:3:3: services.api: no image`,
			"add image: path/to/image (an OCI layout, a tarball, or a name in the local image store)"},
		{"docker unterminated command", "services:\n  web: {image: nginx, command: \"echo 'hi\"}\n", `c.yaml:2:32: services.web.command: unterminated ' quote`,
			"close the quote, or write the command as a list"},
		{"docker bad depends", "services:\n  web: {image: nginx, depends_on: [db]}\n", `c.yaml:2:36: services.web.depends_on: no service "db"`,
			"depends_on names a container, vm or service of this file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := Parse("c.yaml", []byte(tt.src))
			if err == nil {
				t.Fatalf("Parse succeeded: %+v", f)
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error %v (%T) is not an *Error", err, err)
			}
			if err.Error() != tt.want {
				t.Errorf("error\n got %s\nwant %s", err, tt.want)
			}
			if e.Hint != tt.hint {
				t.Errorf("hint\n got %s\nwant %s", e.Hint, tt.hint)
			}
			if !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrCycle) {
				t.Errorf("error does not wrap ErrInvalid or ErrCycle")
			}
		})
	}
}

func TestAliasBomb(t *testing.T) {
	var b strings.Builder
	b.WriteString("x-0: &a0 {k: v}\n")
	for i := 1; i < 40; i++ {
		b.WriteString("x-" + itoa(i) + ": &a" + itoa(i) + " {<<: [*a" + itoa(i-1) + ", *a" + itoa(i-1) + "]}\n")
	}
	b.WriteString("networks:\n  n:\n    <<: *a39\n")
	_, err := Parse("bomb.yaml", []byte(b.String()))
	if err == nil || !strings.Contains(err.Error(), "too many alias expansions") {
		t.Fatalf("err = %v, want too many alias expansions", err)
	}
}

func itoa(i int) string { return strconv.Itoa(i) }
