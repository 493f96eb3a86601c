package constellation

import (
	"go.yaml.in/yaml/v3"
)

// docker-compose support: a file whose top-level services have image: (or
// build:) is read as a Compose Specification file; its services become
// containers. Keys Volt maps are listed in dockerServiceKeys; keys of the
// specification it cannot honour are accepted with a warning (File.Warnings);
// anything else is an unknown-key error.
var (
	dockerTopKeys     = []string{"version", "name", "services", "networks", "volumes", "configs", "secrets", "include"}
	dockerServiceKeys = []string{"image", "command", "entrypoint", "working_dir", "user", "environment", "env_file", "ports",
		"networks", "network_mode", "volumes", "depends_on", "healthcheck", "restart", "configs", "secrets",
		"mem_limit", "cpus", "deploy", "build"}
	dockerIgnoredServiceKeys = []string{"annotations", "attach", "blkio_config", "cap_add", "cap_drop", "cgroup",
		"cgroup_parent", "container_name", "cpu_count", "cpu_percent", "cpu_period", "cpu_quota", "cpu_rt_period",
		"cpu_rt_runtime", "cpu_shares", "cpuset", "credential_spec", "develop", "device_cgroup_rules", "devices", "dns",
		"dns_opt", "dns_search", "domainname", "driver_opts", "expose", "extends", "external_links", "extra_hosts", "gpus",
		"group_add", "hostname", "init", "ipc", "isolation", "labels", "label_file", "links", "logging", "mac_address",
		"mem_reservation", "mem_swappiness", "memswap_limit", "models", "oom_kill_disable", "oom_score_adj", "pid",
		"pids_limit", "platform", "post_start", "pre_stop", "privileged", "profiles", "provider", "pull_policy",
		"read_only", "runtime", "scale", "security_opt", "shm_size", "stdin_open", "stop_grace_period", "stop_signal",
		"storage_opt", "sysctls", "tmpfs", "tty", "ulimits", "use_api_socket", "userns_mode", "uts", "volumes_from"}
	dockerNetworkKeys        = []string{"driver", "ipam", "internal"}
	dockerIgnoredNetworkKeys = []string{"driver_opts", "attachable", "enable_ipv4", "enable_ipv6", "external", "labels", "name"}
	dockerIgnoredVolumeKeys  = []string{"driver_opts", "external", "labels", "name"}
	dockerIgnoredConfigKeys  = []string{"environment", "content", "external", "name", "labels", "template_driver", "driver", "driver_opts"}
	dockerDeployKeys         = []string{"resources", "restart_policy", "mode", "replicas", "labels", "placement", "endpoint_mode", "rollback_config", "update_config"}
)

// isDockerCompose reports whether root looks like a docker-compose file:
// top-level services whose entries have image or build, and none of the
// Volt-only keys containers, vms, tasks.
func isDockerCompose(root *yaml.Node) bool {
	probe := &decoder{pos: map[string]nodePos{}}
	top, err := probe.pairs(root, "", "")
	if err != nil {
		return false
	}
	var services *yaml.Node
	for _, p := range top {
		switch p.name {
		case "containers", "vms", "tasks":
			return false
		case "services":
			services = p.val
		}
	}
	entries, err := probe.pairs(services, "", "")
	if err != nil {
		return false
	}
	for _, e := range entries {
		keys, err := probe.pairs(e.val, "", "")
		if err != nil {
			continue
		}
		for _, k := range keys {
			if k.name == "image" || k.name == "build" {
				return true
			}
		}
	}
	return false
}

// dockerFile decodes a docker-compose file's top-level mapping.
func (d *decoder) dockerFile(root *yaml.Node) (*File, error) {
	f := &File{docker: true}
	err := d.fields(root, "", "a map with keys like services, networks, volumes", dockerTopKeys, nil, func(key, p string, v *yaml.Node) error {
		var err error
		switch key {
		case "version":
			// Obsolete in the Compose Specification; not Volt's version.
		case "name":
			f.Name, err = d.str(v, p)
		case "services":
			f.Containers, err = named(d, v, p, "a map of service name to settings", d.container)
		case "networks":
			f.Networks, err = named(d, v, p, "a map of network name to settings", d.network)
		case "volumes":
			f.Volumes, err = named(d, v, p, "a map of volume name to settings", d.volume)
		case "configs":
			f.Configs, err = named(d, v, p, "a map of config name to {file: ...}", d.config)
		case "secrets":
			f.Secrets, err = named(d, v, p, "a map of secret name to {file: ...}", d.secret)
		case "include":
			err = d.errAt(v, "merge the included files into this one", "%s: not supported by Volt", p)
		}
		return err
	})
	return f, err
}

// dockerServiceKey handles the docker-compose service keys that have no Volt
// key of the same name.
func (d *decoder) dockerServiceKey(c *Container, key, path string, v *yaml.Node) error {
	var err error
	switch key {
	case "mem_limit":
		res := ensureResources(c)
		res.Memory, err = d.str(v, path)
	case "cpus":
		res := ensureResources(c)
		res.CPUs, err = d.cpus(v, path)
	case "build":
		d.warn(v, "%s: not supported by Volt; ignored (build the image, then give its path or name in image:)", path)
	case "deploy":
		err = d.fields(v, path, "a map", dockerDeployKeys, nil, func(key, p string, v *yaml.Node) error {
			switch key {
			case "resources":
				return d.deployResources(c, v, p)
			case "restart_policy":
				return d.fields(v, p, "a map", []string{"condition", "delay", "max_attempts", "window"}, nil, func(key, p string, v *yaml.Node) error {
					if key != "condition" {
						d.warn(v, "%s: not supported by Volt; ignored", p)
						return nil
					}
					cond, err := d.str(v, p)
					switch cond {
					case "none":
						c.Restart = "no"
					case "any":
						c.Restart = "always"
					default:
						c.Restart = cond
					}
					return err
				})
			default:
				d.warn(v, "%s: not supported by Volt; ignored", p)
				return nil
			}
		})
	}
	return err
}

func ensureResources(c *Container) *Resources {
	if c.Resources == nil {
		c.Resources = &Resources{}
	}
	return c.Resources
}

// deployResources maps deploy.resources.limits to Resources.
func (d *decoder) deployResources(c *Container, n *yaml.Node, path string) error {
	return d.fields(n, path, "a map", []string{"limits", "reservations"}, nil, func(key, p string, v *yaml.Node) error {
		if key != "limits" {
			d.warn(v, "%s: not supported by Volt; ignored", p)
			return nil
		}
		return d.fields(v, p, "a map", []string{"memory", "cpus", "pids", "devices"}, nil, func(key, p string, v *yaml.Node) error {
			var err error
			switch key {
			case "memory":
				ensureResources(c).Memory, err = d.str(v, p)
			case "cpus":
				ensureResources(c).CPUs, err = d.cpus(v, p)
			default:
				d.warn(v, "%s: not supported by Volt; ignored", p)
			}
			return err
		})
	})
}

// ipamSubnet takes the first subnet of docker's ipam.config.
func (d *decoder) ipamSubnet(n *yaml.Node, path string) (string, error) {
	var subnet string
	err := d.fields(n, path, "a map", []string{"driver", "config", "options"}, nil, func(key, p string, v *yaml.Node) error {
		if key != "config" {
			d.warn(v, "%s: not supported by Volt; ignored", p)
			return nil
		}
		return d.list(v, p, "a list like [{subnet: 10.0.0.0/24}]", func(i int, sub string, item *yaml.Node) error {
			return d.fields(item, sub, "a map like {subnet: 10.0.0.0/24}", []string{"subnet", "ip_range", "gateway", "aux_addresses"}, nil, func(key, p string, v *yaml.Node) error {
				if key != "subnet" || i > 0 {
					d.warn(v, "%s: not supported by Volt; ignored", p)
					return nil
				}
				var err error
				subnet, err = d.str(v, p)
				return err
			})
		})
	})
	return subnet, err
}
