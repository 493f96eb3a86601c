package constellation

import (
	"strconv"

	"go.yaml.in/yaml/v3"
)

// Key sets per level; unknown keys get a "did you mean" hint against these.
var (
	voltTopKeys      = []string{"version", "name", "description", "containers", "vms", "services", "tasks", "networks", "volumes", "configs", "secrets"}
	containerKeys    = []string{"image", "command", "entrypoint", "working_dir", "user", "environment", "env_file", "ports", "networks", "network_mode", "volumes", "depends_on", "healthcheck", "restart", "resources", "security", "configs", "secrets", "cap_add", "cap_drop", "privileged", "read_only", "tmpfs"}
	vmKeys           = []string{"image", "cpu", "memory", "kernel", "initrd", "cmdline", "ports", "networks", "depends_on", "environment", "configs"}
	hostServiceKeys  = []string{"exec", "environment", "depends_on"}
	taskKeys         = []string{"image", "command", "schedule", "environment"}
	healthcheckKeys  = []string{"test", "interval", "timeout", "retries", "start_period", "disable"}
	resourcesKeys    = []string{"memory", "cpus"}
	securityKeys     = []string{"landlock", "seccomp", "no_new_privileges", "writable"}
	configRefKeys    = []string{"source", "target", "template"}
	networkKeys      = []string{"subnet", "internal"}
	volumeKeys       = []string{"driver"}
	configKeys       = []string{"file"}
	secretKeys       = []string{"file", "environment"}
	portLongKeys     = []string{"target", "published", "host_ip", "protocol", "mode", "name", "app_protocol"}
	volumeLongKeys   = []string{"type", "source", "target", "read_only", "bind", "volume", "tmpfs", "consistency"}
	secretRefLongKey = []string{"source", "target", "uid", "gid", "mode"}
)

// container decodes a Volt container or a docker-compose service.
func (d *decoder) container(n *yaml.Node, path string) (*Container, error) {
	c := &Container{}
	known, ignored := containerKeys, []string(nil)
	want := "a map of container settings"
	if d.docker {
		known, ignored = dockerServiceKeys, dockerIgnoredServiceKeys
		want = "a map of service settings"
	}
	err := d.fields(n, path, want, known, ignored, func(key, p string, v *yaml.Node) error {
		var err error
		switch key {
		case "image":
			c.Image, err = d.image(v, p)
		case "command":
			c.Command, err = d.command(v, p)
		case "entrypoint":
			c.Entrypoint, err = d.command(v, p)
		case "working_dir":
			c.WorkingDir, err = d.str(v, p)
		case "user":
			c.User, err = d.str(v, p)
		case "environment":
			c.Environment, err = d.environment(v, p)
		case "env_file":
			c.EnvFile, err = d.envFiles(v, p)
		case "ports":
			c.Ports, err = d.ports(v, p)
		case "networks":
			c.Networks, err = d.networkRefs(v, p)
		case "network_mode":
			c.NetworkMode, err = d.str(v, p)
		case "volumes":
			c.Volumes, err = d.volumeMounts(v, p)
		case "depends_on":
			c.DependsOn, err = d.dependsOn(v, p)
		case "healthcheck":
			c.Healthcheck, err = d.healthcheck(v, p)
		case "restart":
			c.Restart, err = d.str(v, p)
		case "resources":
			c.Resources, err = d.resources(v, p)
		case "security":
			c.Security, err = d.security(v, p)
		case "configs":
			c.Configs, err = d.configRefs(v, p)
		case "secrets":
			c.Secrets, err = d.secretRefs(v, p)
		case "cap_add":
			c.CapAdd, err = d.strList(v, p, "a list of capabilities like [NET_ADMIN]")
		case "cap_drop":
			c.CapDrop, err = d.strList(v, p, "a list of capabilities like [NET_RAW] or [ALL]")
		case "privileged":
			c.Privileged, err = d.boolean(v, p)
		case "read_only":
			c.ReadOnly, err = d.boolean(v, p)
		case "tmpfs":
			r, rerr := d.resolve(v)
			if rerr != nil {
				return rerr
			}
			if r != nil && r.Kind == yaml.ScalarNode && !isNull(r) {
				c.Tmpfs = []string{r.Value}
			} else {
				c.Tmpfs, err = d.strList(r, p, "a path or a list of paths like [/tmp, /run]")
			}
		default:
			err = d.dockerServiceKey(c, key, p, v)
		}
		return err
	})
	return c, err
}

func (d *decoder) vm(n *yaml.Node, path string) (*VM, error) {
	m := &VM{}
	err := d.fields(n, path, "a map of VM settings", vmKeys, nil, func(key, p string, v *yaml.Node) error {
		var err error
		switch key {
		case "image":
			m.Image, err = d.image(v, p)
		case "cpu":
			m.CPU, err = d.integer(v, p)
		case "memory":
			m.Memory, err = d.str(v, p)
		case "kernel":
			m.Kernel, err = d.str(v, p)
		case "initrd":
			m.Initrd, err = d.str(v, p)
		case "cmdline":
			m.Cmdline, err = d.str(v, p)
		case "ports":
			m.Ports, err = d.ports(v, p)
		case "networks":
			m.Networks, err = d.networkRefs(v, p)
		case "depends_on":
			m.DependsOn, err = d.dependsOn(v, p)
		case "environment":
			m.Environment, err = d.environment(v, p)
		case "configs":
			m.Configs, err = d.configRefs(v, p)
		}
		return err
	})
	return m, err
}

func (d *decoder) hostService(n *yaml.Node, path string) (*HostService, error) {
	s := &HostService{}
	err := d.fields(n, path, "a map like {exec: [\"/usr/bin/app\"]}", hostServiceKeys, nil, func(key, p string, v *yaml.Node) error {
		var err error
		switch key {
		case "exec":
			s.Exec, err = d.command(v, p)
		case "environment":
			s.Environment, err = d.environment(v, p)
		case "depends_on":
			s.DependsOn, err = d.dependsOn(v, p)
		}
		return err
	})
	return s, err
}

func (d *decoder) task(n *yaml.Node, path string) (*Task, error) {
	t := &Task{}
	err := d.fields(n, path, "a map of task settings", taskKeys, nil, func(key, p string, v *yaml.Node) error {
		var err error
		switch key {
		case "image":
			t.Image, err = d.image(v, p)
		case "command":
			t.Command, err = d.command(v, p)
		case "schedule":
			t.Schedule, err = d.str(v, p)
		case "environment":
			t.Environment, err = d.environment(v, p)
		}
		return err
	})
	return t, err
}

func (d *decoder) healthcheck(n *yaml.Node, path string) (*Healthcheck, error) {
	h := &Healthcheck{}
	err := d.fields(n, path, "a map like {test: [\"CMD\", \"/bin/check\"], interval: 5s}", healthcheckKeys, nil, func(key, p string, v *yaml.Node) error {
		var err error
		switch key {
		case "test":
			r, rerr := d.resolve(v)
			if rerr != nil {
				return rerr
			}
			if r.Kind == yaml.ScalarNode && !isNull(r) {
				h.Test = []string{"CMD-SHELL", r.Value}
			} else {
				h.Test, err = d.strList(r, p, `a list like ["CMD", "/bin/check"] or a shell command string`)
			}
		case "interval":
			h.Interval, err = d.str(v, p)
		case "timeout":
			h.Timeout, err = d.str(v, p)
		case "retries":
			h.Retries, err = d.integer(v, p)
		case "start_period":
			h.StartPeriod, err = d.str(v, p)
		case "disable":
			var off bool
			off, err = d.boolean(v, p)
			if off {
				h.Test = []string{"NONE"}
			}
		}
		return err
	})
	return h, err
}

func (d *decoder) resources(n *yaml.Node, path string) (*Resources, error) {
	r := &Resources{}
	err := d.fields(n, path, "a map like {memory: 256M, cpus: 0.5}", resourcesKeys, nil, func(key, p string, v *yaml.Node) error {
		var err error
		switch key {
		case "memory":
			r.Memory, err = d.str(v, p)
		case "cpus":
			r.CPUs, err = d.cpus(v, p)
		}
		return err
	})
	return r, err
}

// cpus accepts a number or a numeric string (docker writes cpus: "0.5").
func (d *decoder) cpus(n *yaml.Node, path string) (float64, error) {
	r, err := d.resolve(n)
	if err != nil {
		return 0, err
	}
	if r != nil && r.Kind == yaml.ScalarNode && r.ShortTag() == "!!str" {
		f, perr := strconv.ParseFloat(r.Value, 64)
		if perr != nil {
			return 0, d.errAt(r, "", "%s: want a number, got %q", path, r.Value)
		}
		return f, nil
	}
	return d.number(r, path)
}

func (d *decoder) security(n *yaml.Node, path string) (*Security, error) {
	s := &Security{}
	err := d.fields(n, path, "a map like {landlock: default, seccomp: default}", securityKeys, nil, func(key, p string, v *yaml.Node) error {
		var err error
		switch key {
		case "landlock":
			r, rerr := d.resolve(v)
			if rerr != nil {
				return rerr
			}
			if r != nil && r.Kind == yaml.MappingNode {
				s.Landlock = LandlockInline
				s.LandlockRules, err = d.landlockRules(r, p)
			} else {
				s.Landlock, err = d.str(v, p)
			}
		case "seccomp":
			s.Seccomp, err = d.str(v, p)
		case "no_new_privileges":
			var b bool
			b, err = d.boolean(v, p)
			s.NoNewPrivileges = &b
		case "writable":
			s.Writable, err = d.strList(v, p, "a list of container paths like [/var/lib/app]")
		}
		return err
	})
	return s, err
}

// envFiles decodes a path, a list of paths, or docker's [{path, required}].
func (d *decoder) envFiles(n *yaml.Node, path string) ([]string, error) {
	r, err := d.resolve(n)
	if err != nil {
		return nil, err
	}
	if r != nil && r.Kind == yaml.ScalarNode && !isNull(r) {
		return []string{r.Value}, nil
	}
	var out []string
	err = d.list(r, path, "a path or a list of paths", func(_ int, sub string, item *yaml.Node) error {
		item, err := d.resolve(item)
		if err != nil {
			return err
		}
		if item.Kind == yaml.MappingNode {
			var file string
			err := d.fields(item, sub, "", []string{"path"}, []string{"required", "format"}, func(_, p string, v *yaml.Node) error {
				var err error
				file, err = d.str(v, p)
				return err
			})
			out = append(out, file)
			return err
		}
		s, err := d.str(item, sub)
		out = append(out, s)
		return err
	})
	return nilIfEmpty(out), err
}

// ports decodes "host:guest" strings, bare integers, or docker's long form.
func (d *decoder) ports(n *yaml.Node, path string) ([]string, error) {
	const want = `a list of strings like "8080:80"`
	var out []string
	err := d.list(n, path, want, func(_ int, sub string, item *yaml.Node) error {
		item, err := d.resolve(item)
		if err != nil {
			return err
		}
		switch {
		case item.Kind == yaml.ScalarNode && !isNull(item):
			out = append(out, item.Value)
			return nil
		case item.Kind == yaml.MappingNode:
			var target, published, hostIP, proto string
			err := d.fields(item, sub, "", portLongKeys, nil, func(key, p string, v *yaml.Node) error {
				s, err := d.str(v, p)
				switch key {
				case "target":
					target = s
				case "published":
					published = s
				case "host_ip":
					hostIP = s
				case "protocol":
					proto = s
				}
				return err
			})
			if err != nil {
				return err
			}
			if published == "" {
				published = target
			}
			spec := published + ":" + target
			if hostIP != "" {
				spec = hostIP + ":" + spec
			}
			if proto != "" {
				spec += "/" + proto
			}
			out = append(out, spec)
			return nil
		default:
			return d.errAt(item, "", "%s: want %s, got %s", path, want, kindName(item))
		}
	})
	if err == nil {
		return nilIfEmpty(out), nil
	}
	return nil, err
}

// volumeMounts decodes "source:target[:mode]" strings or docker's long form.
func (d *decoder) volumeMounts(n *yaml.Node, path string) ([]string, error) {
	const want = `a list of strings like "data:/var/lib/app"`
	var out []string
	err := d.list(n, path, want, func(_ int, sub string, item *yaml.Node) error {
		item, err := d.resolve(item)
		if err != nil {
			return err
		}
		switch {
		case item.Kind == yaml.ScalarNode && !isNull(item):
			out = append(out, item.Value)
			return nil
		case item.Kind == yaml.MappingNode:
			var source, target string
			var ro bool
			err := d.fields(item, sub, "", volumeLongKeys, nil, func(key, p string, v *yaml.Node) error {
				var err error
				switch key {
				case "source":
					source, err = d.str(v, p)
				case "target":
					target, err = d.str(v, p)
				case "read_only":
					ro, err = d.boolean(v, p)
				case "type":
					var t string
					t, err = d.str(v, p)
					if err == nil && t != "volume" && t != "bind" {
						err = d.errAt(v, `use type "volume" or "bind"`, "%s: volume type %q is not supported", p, t)
					}
				default:
					d.warn(v, "%s: not supported by Volt; ignored", p)
				}
				return err
			})
			if err != nil {
				return err
			}
			spec := target
			if source != "" {
				spec = source + ":" + target
			}
			if ro {
				spec += ":ro"
			}
			out = append(out, spec)
			return nil
		default:
			return d.errAt(item, "", "%s: want %s, got %s", path, want, kindName(item))
		}
	})
	return nilIfEmpty(out), err
}

// networkRefs decodes a list of network names or docker's map name -> settings.
func (d *decoder) networkRefs(n *yaml.Node, path string) ([]string, error) {
	r, err := d.resolve(n)
	if err != nil {
		return nil, err
	}
	if r != nil && r.Kind == yaml.MappingNode {
		var out []string
		err := d.entries(r, path, "", func(name, sub string, _, v *yaml.Node) error {
			out = append(out, name)
			ps, err := d.pairs(v, sub, "a map")
			for _, p := range ps {
				d.warn(p.key, "%s.%s: not supported by Volt; ignored", sub, p.name)
			}
			return err
		})
		return nilIfEmpty(out), err
	}
	return d.strList(r, path, "a list of network names")
}

// configRefs decodes {source, target, template} entries or docker's bare names.
func (d *decoder) configRefs(n *yaml.Node, path string) ([]ConfigRef, error) {
	var out []ConfigRef
	err := d.list(n, path, "a list like [{source: app, target: /etc/app.conf}]", func(_ int, sub string, item *yaml.Node) error {
		item, err := d.resolve(item)
		if err != nil {
			return err
		}
		if item.Kind == yaml.ScalarNode && !isNull(item) {
			out = append(out, ConfigRef{Source: item.Value, Target: "/" + item.Value})
			return nil
		}
		var ref ConfigRef
		ignored := []string(nil)
		if d.docker {
			ignored = []string{"uid", "gid", "mode"}
		}
		err = d.fields(item, sub, "a map like {source: app, target: /etc/app.conf}", configRefKeys, ignored, func(key, p string, v *yaml.Node) error {
			var err error
			switch key {
			case "source":
				ref.Source, err = d.str(v, p)
			case "target":
				ref.Target, err = d.str(v, p)
			case "template":
				ref.Template, err = d.boolean(v, p)
			}
			return err
		})
		if ref.Target == "" {
			ref.Target = "/" + ref.Source
		}
		out = append(out, ref)
		return err
	})
	return nilIfEmpty(out), err
}

// secretRefs decodes secret names or docker's long form {source, ...}.
func (d *decoder) secretRefs(n *yaml.Node, path string) ([]string, error) {
	var out []string
	err := d.list(n, path, "a list of secret names", func(_ int, sub string, item *yaml.Node) error {
		item, err := d.resolve(item)
		if err != nil {
			return err
		}
		if item.Kind == yaml.ScalarNode && !isNull(item) {
			out = append(out, item.Value)
			return nil
		}
		var name string
		err = d.fields(item, sub, "a secret name", secretRefLongKey, nil, func(key, p string, v *yaml.Node) error {
			if key != "source" {
				d.warn(v, "%s: not supported by Volt; ignored", p)
				return nil
			}
			var err error
			name, err = d.str(v, p)
			return err
		})
		out = append(out, name)
		return err
	})
	return nilIfEmpty(out), err
}

func (d *decoder) network(n *yaml.Node, path string) (*Network, error) {
	nw := &Network{}
	known, ignored := networkKeys, []string(nil)
	if d.docker {
		known, ignored = dockerNetworkKeys, dockerIgnoredNetworkKeys
	}
	err := d.fields(n, path, "a map like {subnet: 10.20.0.0/24}", known, ignored, func(key, p string, v *yaml.Node) error {
		var err error
		switch key {
		case "subnet":
			nw.Subnet, err = d.str(v, p)
		case "internal":
			nw.Internal, err = d.boolean(v, p)
		case "ipam":
			nw.Subnet, err = d.ipamSubnet(v, p)
		case "driver":
			var drv string
			drv, err = d.str(v, p)
			if err == nil && drv != "bridge" && drv != "" {
				d.warn(v, "%s: driver %q is not supported by Volt; a Volt network is used", p, drv)
			}
		}
		return err
	})
	return nw, err
}

func (d *decoder) volume(n *yaml.Node, path string) (*Volume, error) {
	vol := &Volume{}
	known, ignored := volumeKeys, []string(nil)
	if d.docker {
		ignored = dockerIgnoredVolumeKeys
	}
	err := d.fields(n, path, "a map like {driver: local}", known, ignored, func(_, p string, v *yaml.Node) error {
		var err error
		vol.Driver, err = d.str(v, p)
		return err
	})
	return vol, err
}

func (d *decoder) config(n *yaml.Node, path string) (*Config, error) {
	c := &Config{}
	ignored := []string(nil)
	if d.docker {
		ignored = dockerIgnoredConfigKeys
	}
	err := d.fields(n, path, "a map like {file: conf/app.conf}", configKeys, ignored, func(_, p string, v *yaml.Node) error {
		var err error
		c.File, err = d.str(v, p)
		return err
	})
	return c, err
}

func (d *decoder) secret(n *yaml.Node, path string) (*Secret, error) {
	s := &Secret{}
	ignored := []string(nil)
	if d.docker {
		ignored = dockerIgnoredConfigKeys
	}
	err := d.fields(n, path, "a map like {file: secrets/db.txt}", secretKeys, ignored, func(key, p string, v *yaml.Node) error {
		var err error
		switch key {
		case "file":
			s.File, err = d.str(v, p)
		case "environment":
			s.Environment, err = d.str(v, p)
		}
		return err
	})
	return s, err
}

// named decodes a top-level map of named entries with decode.
func named[T any](d *decoder, n *yaml.Node, path, want string, decode func(*yaml.Node, string) (T, error)) (map[string]T, error) {
	out := map[string]T{}
	err := d.entries(n, path, want, func(name, sub string, _, v *yaml.Node) error {
		x, err := decode(v, sub)
		out[name] = x
		return err
	})
	if len(out) == 0 {
		out = nil
	}
	return out, err
}

// voltFile decodes a Volt Constellation's top-level mapping.
func (d *decoder) voltFile(root *yaml.Node) (*File, error) {
	f := &File{}
	err := d.fields(root, "", "a map with keys like containers, vms, networks", voltTopKeys, nil, func(key, p string, v *yaml.Node) error {
		var err error
		switch key {
		case "version":
			f.Version, err = d.str(v, p)
		case "name":
			f.Name, err = d.str(v, p)
		case "description":
			f.Description, err = d.str(v, p)
		case "containers":
			f.Containers, err = named(d, v, p, "a map of container name to settings", d.container)
		case "vms":
			f.VMs, err = named(d, v, p, "a map of VM name to settings", d.vm)
		case "services":
			f.Services, err = named(d, v, p, "a map of service name to {exec: [...]}", d.hostService)
		case "tasks":
			f.Tasks, err = named(d, v, p, "a map of task name to settings", d.task)
		case "networks":
			f.Networks, err = named(d, v, p, "a map of network name to settings", d.network)
		case "volumes":
			f.Volumes, err = named(d, v, p, "a map of volume name to settings", d.volume)
		case "configs":
			f.Configs, err = named(d, v, p, "a map of config name to {file: ...}", d.config)
		case "secrets":
			f.Secrets, err = named(d, v, p, "a map of secret name to {file: ...}", d.secret)
		}
		return err
	})
	return f, err
}

// landlockRulesKeys are the keys of an inline Landlock policy.
var landlockRulesKeys = []string{"fs_read", "fs_write", "fs_execute", "net_bind", "net_connect", "restrict_net"}

// landlockRules decodes an inline Landlock policy.
func (d *decoder) landlockRules(n *yaml.Node, path string) (*LandlockRules, error) {
	r := &LandlockRules{}
	err := d.fields(n, path, "a profile name or a map like {fs_read: [/etc], fs_write: [/srv]}", landlockRulesKeys, nil, func(key, p string, v *yaml.Node) error {
		var err error
		paths := func() ([]string, error) { return d.strList(v, p, "a list of container paths like [/srv]") }
		ports := func() ([]int, error) {
			var out []int
			err := d.list(v, p, "a list of TCP ports like [8080]", func(_ int, sub string, item *yaml.Node) error {
				n, err := d.integer(item, sub)
				if err == nil && (n < 1 || n > 65535) {
					return d.errAt(item, "", "%s: %d is not a TCP port (1-65535)", sub, n)
				}
				out = append(out, n)
				return err
			})
			return out, err
		}
		switch key {
		case "fs_read":
			r.FSRead, err = paths()
		case "fs_write":
			r.FSWrite, err = paths()
		case "fs_execute":
			r.FSExecute, err = paths()
		case "net_bind":
			r.NetBind, err = ports()
		case "net_connect":
			r.NetConnect, err = ports()
		case "restrict_net":
			r.RestrictNet, err = d.boolean(v, p)
		}
		return err
	})
	return r, err
}
