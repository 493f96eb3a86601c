package constellation

import (
	"reflect"
	"testing"
)

func TestDockerCompose(t *testing.T) {
	f, err := Load("testdata/docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	wp, db, cache := f.Containers["wordpress"], f.Containers["db"], f.Containers["cache"]
	if wp == nil || db == nil || cache == nil || len(f.Services) != 0 {
		t.Fatalf("services not mapped to containers: containers=%v services=%v", f.Containers, f.Services)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"name", f.Name, "blog"},
		{"version dropped", f.Version, ""},
		{"image", wp.Image, ImageRef{Single: "wordpress:6.5"}},
		{"ports short and long", wp.Ports, []string{"8000:80", "8443:443/tcp"}},
		{"volumes short and long", wp.Volumes, []string{"wp_data:/var/www/html", "./uploads.ini:/usr/local/etc/php/conf.d/uploads.ini:ro"}},
		{"networks map form", wp.Networks, []string{"frontend", "backend"}},
		{"depends_on", wp.DependsOn, map[string]Dependency{"db": {Condition: ServiceHealthy}}},
		{"deploy limits", *wp.Resources, Resources{Memory: "512M", CPUs: 0.5}},
		{"config short form", wp.Configs, []ConfigRef{{Source: "php_ini", Target: "/php_ini"}}},
		{"secret short form", wp.Secrets, []string{"db_password"}},
		{"restart", wp.Restart, "always"},
		{"command string is shell-split", db.Command, []string{"--default-authentication-plugin=mysql_native_password"}},
		{"environment list with pass-through", db.Environment, map[string]string{
			"MYSQL_DATABASE": "wordpress", "MYSQL_USER": "wordpress", "MYSQL_ROOT_PASSWORD": "${MYSQL_ROOT_PASSWORD}"}},
		{"env_file string", db.EnvFile, []string{"db.env"}},
		{"healthcheck", *db.Healthcheck, Healthcheck{Test: []string{"CMD", "healthcheck.sh", "--connect"}, Interval: "10s", Timeout: "5s", Retries: 5, StartPeriod: "30s"}},
		{"mem_limit", db.Resources.Memory, "1g"},
		{"secret long form", db.Secrets, []string{"db_password"}},
		{"network_mode", cache.NetworkMode, "service:db"},
		{"ipam subnet + internal", *f.Networks["backend"], Network{Subnet: "172.28.0.0/16", Internal: true}},
		{"null volume", *f.Volumes["wp_data"], Volume{}},
		{"configs", *f.Configs["php_ini"], Config{File: "./php.ini"}},
		{"secrets", *f.Secrets["db_password"], Secret{File: "./db_password.txt"}},
		{"warnings", f.Warnings, []string{
			"testdata/docker-compose.yml:12:5: services.wordpress.container_name: not supported by Volt; ignored",
			"testdata/docker-compose.yml:32:9: services.wordpress.networks.backend.aliases: not supported by Volt; ignored",
			"testdata/docker-compose.yml:36:9: services.wordpress.depends_on.db.restart: not supported by Volt; ignored",
			"testdata/docker-compose.yml:5:3: services.wordpress.logging: not supported by Volt; ignored",
			"testdata/docker-compose.yml:61:17: services.db.secrets[0].target: not supported by Volt; ignored",
			"testdata/docker-compose.yml:63:12: services.cache.build: not supported by Volt; ignored (build the image, then give its path or name in image:)",
			"testdata/docker-compose.yml:79:5: volumes.db_data.external: not supported by Volt; ignored",
		}},
	}
	for _, c := range checks {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s:\n got %#v\nwant %#v", c.name, c.got, c.want)
		}
	}
	levels, err := Levels(f)
	if err != nil {
		t.Fatal(err)
	}
	if want := [][]string{{"db"}, {"cache", "wordpress"}}; !reflect.DeepEqual(levels, want) {
		t.Errorf("levels %v, want %v", levels, want)
	}
}

func TestShellSplit(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"a b  c", []string{"a", "b", "c"}},
		{`echo 'a b' "c \"d\"" e\ f`, []string{"echo", "a b", `c "d"`, "e f"}},
		{`x=''`, []string{"x="}},
		{`""`, []string{""}},
		{"", nil},
	}
	for _, tt := range tests {
		got, err := shellSplit(tt.in)
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("shellSplit(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
	for _, bad := range []string{`'a`, `"a`, `"a\"`} {
		if _, err := shellSplit(bad); err == nil {
			t.Errorf("shellSplit(%q) succeeded", bad)
		}
	}
}

func TestDockerDetection(t *testing.T) {
	tests := []struct {
		src    string
		docker bool
	}{
		{"services:\n  s: {exec: [x]}\n", false},
		{"services:\n  s: {image: nginx}\n", true},
		{"services:\n  s: {build: ., image: x}\n", true},
		{"containers:\n  c: {image: i}\nservices:\n  s: {exec: [x]}\n", false},
	}
	for _, tt := range tests {
		f := mustParse(t, tt.src)
		if f.docker != tt.docker {
			t.Errorf("%q: docker = %v, want %v", tt.src, f.docker, tt.docker)
		}
	}
}
