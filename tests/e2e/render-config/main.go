// render-config renders RKE2/K3s's generated containerd config.toml from the real k3s base
// templates (tests/fixtures/upstream/k3s-templates, embedded at build time) the way the k3s agent
// does on every start, for a node fixture tree. It is also the `systemctl` and `nsenter` stub of
// the test cluster's node sandboxes (multi-call: run as `systemctl` it records its argv and
// re-renders config.toml when the node's rke2/k3s service is restarted, like a real agent
// restart; run as `nsenter -t 1 -m [...] [--] cmd` it runs cmd chrooted into the node tree).
// On a real test node (tests/e2e/realnode) `systemctl` and `systemd-run` hand the call to the
// node's init, which really stops and starts containerd and the kubelet.
//
// Emulated k3s code (k3s-io/k3s, see tests/fixtures/upstream/k3s-templates/render-notes.json):
//   - pkg/agent/templates: ContainerdConfig data, the Linux template funcs (deschemify, toJson,
//     filepathjoin), ParseTemplateFromConfig ("compiled_template" + named "base"), trimEmpty.
//   - pkg/agent/containerd/config.go writeContainerdConfig: config-v3.toml.tmpl (v3 base), else
//     config.toml.tmpl (v2 base), else the default base.
//   - pkg/agent/containerd/runtimes.go findContainerRuntimes: exec.LookPath over
//     "/usr/local/nvidia/toolkit:/opt/kwasm/bin:" + the service PATH, inside the node tree.
//   - SetupContainerdConfig: "default runtime %s was not found".
//
// Per-node inputs live in profiles/<node>.json (version line, template features, pause image...).
package main

import (
	"bufio"
	"bytes"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"text/template"
)

//go:embed templates/*.tmpl profiles/*.json
var embedded embed.FS

// Profile: what differs between the simulated nodes' RKE2/K3s versions and hosts.
type Profile struct {
	Node       string `json:"node"`
	Program    string `json:"program"`    // "rke2" or "k3s" (version.Program)
	Version    string `json:"version"`    // e.g. v1.33.10+rke2r1 (documentation only)
	Containerd string `json:"containerd"` // e.g. v2.2.2-k3s1 (documentation only)
	Service    string `json:"service"`    // systemd unit: rke2-server, rke2-agent, k3s, k3s-agent
	DataDir    string `json:"dataDir"`    // /var/lib/rancher/rke2
	// V3Template: this line knows config-v3.toml.tmpl and the v3 base (containerd 2.x lines).
	V3Template bool `json:"v3Template"`
	// DefaultBase: the base rendered when no user template exists: "v3" or "v2".
	DefaultBase string `json:"defaultBase"`
	// Imports: the base templates carry the drop-in imports line (k3s PR #13680, 2026).
	Imports bool `json:"imports"`
	// NvidiaCDI: nvidia-cdi runtime detection (k3s PR #11065, Oct 2024 releases).
	NvidiaCDI          bool   `json:"nvidiaCdi"`
	PauseImage         string `json:"pauseImage"`
	Snapshotter        string `json:"snapshotter"`
	SELinux            bool   `json:"selinux"`
	SystemdCgroup      bool   `json:"systemdCgroup"`
	EnableUnprivileged bool   `json:"enableUnprivileged"`
	NonrootDevices     bool   `json:"nonrootDevices"`
	CNIBinDir          string `json:"cniBinDir"`
	CNIConfDir         string `json:"cniConfDir"`
	ServicePath        string `json:"servicePath"`
	// RunningInUserNS: what k3s' userns.RunningInUserNS() detects. The real test nodes set it
	// where the machine cannot lower oom_score_adj (no CAP_SYS_RESOURCE), as in a user namespace:
	// the template then renders restrict_oom_score_adj (and disable_apparmor, NRI off).
	RunningInUserNS bool `json:"runningInUserNS"`
}

// ---- k3s template data types (field names must match the templates) ----

type ContainerdRuntimeConfig struct {
	RuntimeType string
	BinaryName  string
}

type AuthConfig struct{ Username, Password, Auth, IdentityToken string }
type RegistryConfig struct{ Auth *AuthConfig }
type Registry struct{ Configs map[string]RegistryConfig }

type Containerd struct {
	Address, Log, Root, State, Config, Opt, Template, BlockIOConfig, RDTConfig, Registry string
}

type AgentConfig struct {
	PauseImage, Snapshotter, ImageServiceSocket, CNIBinDir, CNIConfDir string
}

type Node struct {
	SELinux        bool
	DefaultRuntime string
	Containerd     Containerd
	AgentConfig    AgentConfig
}

type ContainerdConfig struct {
	NodeConfig            *Node
	DisableCgroup         bool
	SystemdCgroup         bool
	IsRunningInUserNS     bool
	EnableUnprivileged    bool
	NoDefaultEndpoint     bool
	NonrootDevices        bool
	PrivateRegistryConfig *Registry
	ExtraRuntimes         map[string]ContainerdRuntimeConfig
	Program               string
}

// templates_linux.go
var templateFuncs = template.FuncMap{
	"deschemify": func(s string) string { return s },
	"toJson": func(v any) string {
		output, _ := json.Marshal(v)
		return string(output)
	},
	"filepathjoin": filepath.Join,
}

// trimEmpty as in k3s pkg/agent/templates: drop blank lines, one blank line before "[" lines.
func trimEmpty(r []byte) []byte {
	var out bytes.Buffer
	sc := bufio.NewScanner(bytes.NewReader(r))
	for sc.Scan() {
		line := sc.Text()
		if strings.TrimSpace(line) == "" {
			continue
		}
		if strings.HasPrefix(line, "[") {
			out.WriteString("\n")
		}
		out.WriteString(line + "\n")
	}
	return out.Bytes()
}

type runtimeCandidate struct{ name, runtimeType, binary string }

// k3s runtimes.go candidates (HEAD); nvidia-cdi only where the line has it.
func candidates(p *Profile) []runtimeCandidate {
	c := []runtimeCandidate{
		{"crun", "io.containerd.runc.v2", "crun"},
		{"nvidia", "io.containerd.runc.v2", "nvidia-container-runtime"},
		{"nvidia-experimental", "io.containerd.runc.v2", "nvidia-container-runtime-experimental"},
	}
	if p.NvidiaCDI {
		c = append(c, runtimeCandidate{"nvidia-cdi", "io.containerd.runc.v2", "nvidia-container-runtime.cdi"})
	}
	for _, w := range []struct{ n, v string }{{"lunatic", "v1"}, {"slight", "v1"}, {"spin", "v2"}, {"wws", "v1"},
		{"wasmedge", "v1"}, {"wasmer", "v1"}, {"wasmtime", "v1"}} {
		c = append(c, runtimeCandidate{w.n, "io.containerd." + w.n + "." + w.v, "containerd-shim-" + w.n + "-" + w.v})
	}
	return c
}

// lookPath is exec.LookPath over dirs, resolved inside root; it returns the host path.
func lookPath(root string, dirs []string, bin string) (string, bool) {
	for _, d := range dirs {
		if d == "" {
			continue
		}
		p := filepath.Join(d, bin)
		st, err := os.Stat(filepath.Join(root, p))
		if err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return p, true
		}
	}
	return "", false
}

func findContainerRuntimes(root string, p *Profile) map[string]ContainerdRuntimeConfig {
	path := p.ServicePath
	if path == "" {
		path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin"
	}
	dirs := strings.Split("/usr/local/nvidia/toolkit:/opt/kwasm/bin:"+path, ":")
	found := map[string]ContainerdRuntimeConfig{}
	for _, c := range candidates(p) {
		if bin, ok := lookPath(root, dirs, c.binary); ok {
			found[c.name] = ContainerdRuntimeConfig{RuntimeType: c.runtimeType, BinaryName: bin}
		}
	}
	return found
}

var yamlKey = regexp.MustCompile(`^([a-z-]+):\s*["']?([^"'#\s]*)["']?\s*(#.*)?$`)

// readAgentConfig reads the flat keys we need from /etc/rancher/<program>/config.yaml and
// config.yaml.d/*.yaml (later files win, like RKE2). Only top-level scalar keys are supported.
func readAgentConfig(root string, p *Profile) map[string]string {
	dir := filepath.Join(root, "etc/rancher", p.Program)
	files := []string{filepath.Join(dir, "config.yaml")}
	more, _ := filepath.Glob(filepath.Join(dir, "config.yaml.d", "*.yaml"))
	sort.Strings(more)
	files = append(files, more...)
	kv := map[string]string{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			if m := yamlKey.FindStringSubmatch(strings.TrimRight(line, "\r")); m != nil {
				kv[m[1]] = m[2]
			}
		}
	}
	return kv
}

func loadProfile(name string) (*Profile, error) {
	var b []byte
	var err error
	if strings.HasSuffix(name, ".json") {
		b, err = os.ReadFile(name)
	} else {
		b, err = embedded.ReadFile("profiles/" + name + ".json")
	}
	if err != nil {
		return nil, fmt.Errorf("profile %q: %w", name, err)
	}
	p := &Profile{}
	if err := json.Unmarshal(b, p); err != nil {
		return nil, fmt.Errorf("profile %q: %w", name, err)
	}
	if p.DataDir == "" {
		p.DataDir = "/var/lib/rancher/" + p.Program
	}
	return p, nil
}

func baseTemplate(p *Profile, version string) (string, error) {
	b, err := embedded.ReadFile("templates/templates_linux_" + version + ".tmpl")
	if err != nil {
		return "", err
	}
	s := string(b)
	if !p.Imports {
		// Base templates before k3s PR #13680 have no imports line.
		var keep []string
		for _, l := range strings.Split(s, "\n") {
			if !strings.HasPrefix(l, "imports = [") {
				keep = append(keep, l)
			}
		}
		s = strings.Join(keep, "\n")
	}
	return s, nil
}

// Render returns the generated config.toml for the node tree at root, and its path in the tree.
func Render(root string, p *Profile) ([]byte, string, error) {
	tmplDir := filepath.Join(p.DataDir, "agent/etc/containerd")
	hostTmplDir := filepath.Join(root, tmplDir)
	var user, base string
	var err error
	read := func(name string) (string, bool) {
		b, err := os.ReadFile(filepath.Join(hostTmplDir, name))
		return string(b), err == nil
	}
	if u, ok := read("config-v3.toml.tmpl"); ok && p.V3Template {
		user = u
		base, err = baseTemplate(p, "v3")
	} else if u, ok := read("config.toml.tmpl"); ok {
		user = u
		base, err = baseTemplate(p, "v2")
	} else {
		base, err = baseTemplate(p, p.DefaultBase)
		user = base
	}
	if err != nil {
		return nil, "", err
	}

	kv := readAgentConfig(root, p)
	extra := findContainerRuntimes(root, p)
	defaultRuntime := kv["default-runtime"]
	if defaultRuntime != "" {
		if _, ok := extra[defaultRuntime]; !ok {
			return nil, "", fmt.Errorf("default runtime %s was not found", defaultRuntime)
		}
	}
	state := "/run/k3s/containerd"
	cfg := &ContainerdConfig{
		NodeConfig: &Node{
			SELinux:        p.SELinux || kv["selinux"] == "true",
			DefaultRuntime: defaultRuntime,
			Containerd: Containerd{
				Address:  state + "/containerd.sock",
				Log:      filepath.Join(p.DataDir, "agent/containerd/containerd.log"),
				Root:     filepath.Join(p.DataDir, "agent/containerd"),
				Opt:      filepath.Join(p.DataDir, "agent/containerd"),
				State:    state,
				Config:   filepath.Join(tmplDir, "config.toml"),
				Template: tmplDir,
				Registry: filepath.Join(tmplDir, "certs.d"),
			},
			AgentConfig: AgentConfig{
				PauseImage:  p.PauseImage,
				Snapshotter: p.Snapshotter,
				CNIBinDir:   p.CNIBinDir,
				CNIConfDir:  p.CNIConfDir,
			},
		},
		SystemdCgroup:         p.SystemdCgroup,
		IsRunningInUserNS:     p.RunningInUserNS,
		EnableUnprivileged:    p.EnableUnprivileged,
		NonrootDevices:        p.NonrootDevices,
		PrivateRegistryConfig: &Registry{Configs: map[string]RegistryConfig{}},
		ExtraRuntimes:         extra,
		Program:               p.Program,
	}
	t, err := template.New("compiled_template").Funcs(templateFuncs).Parse(user)
	if err != nil {
		return nil, "", err
	}
	if _, err := t.New("base").Parse(base); err != nil {
		return nil, "", err
	}
	var out bytes.Buffer
	if err := t.Execute(&out, cfg); err != nil {
		return nil, "", err
	}
	return trimEmpty(out.Bytes()), cfg.NodeConfig.Containerd.Config, nil
}

func writeAtomic(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp := path + ".tmp-render"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func cmdRender(args []string) error {
	var root, profile, out string
	for i := 0; i < len(args); i++ {
		switch args[i] {
		case "--root":
			i++
			root = args[i]
		case "--profile":
			i++
			profile = args[i]
		case "--out":
			i++
			out = args[i]
		default:
			return fmt.Errorf("unknown argument %q", args[i])
		}
	}
	if root == "" || profile == "" {
		return errors.New("usage: render-config render --root <node-tree> --profile <node|file.json> [--out <file>|-]")
	}
	p, err := loadProfile(profile)
	if err != nil {
		return err
	}
	data, cfgPath, err := Render(root, p)
	if err != nil {
		return err
	}
	switch out {
	case "-":
		_, err = os.Stdout.Write(data)
		return err
	case "":
		return writeAtomic(filepath.Join(root, cfgPath), data)
	default:
		return writeAtomic(out, data)
	}
}

// ---- systemctl stub ----

func hostRoot() string {
	if r := os.Getenv("RKE2GPU_HOST_ROOT"); r != "" {
		return r
	}
	// Outside `chroot /host` the node tree is at /host; inside it is /.
	if st, err := os.Stat("/host/var/lib/rancher"); err == nil && st.IsDir() {
		return "/host"
	}
	return "/"
}

func systemctl(args []string) int {
	root := hostRoot()
	logPath := filepath.Join(root, "var/log/systemctl-calls.log")
	_ = os.MkdirAll(filepath.Dir(logPath), 0o755)
	if f, err := os.OpenFile(logPath, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644); err == nil {
		fmt.Fprintln(f, strings.Join(append([]string{"systemctl"}, args...), " "))
		f.Close()
	}
	if sock := realNodeSocket(); sock != "" {
		return forward(sock, "systemctl", args)
	}
	var verb string
	var units []string
	for _, a := range args {
		if strings.HasPrefix(a, "-") {
			continue
		}
		if verb == "" {
			verb = a
		} else {
			units = append(units, strings.TrimSuffix(a, ".service"))
		}
	}
	node := os.Getenv("RKE2GPU_NODE")
	var p *Profile
	if node != "" {
		p, _ = loadProfile(node)
	}
	known := func(u string) bool {
		return p == nil || u == p.Service || !strings.HasPrefix(u, "rke2-") && !strings.HasPrefix(u, "k3s")
	}
	switch verb {
	case "restart", "start", "try-restart", "reload-or-restart":
		for _, u := range units {
			if !known(u) {
				fmt.Fprintf(os.Stderr, "Failed to %s %s.service: Unit %s.service not found.\n", verb, u, u)
				return 5
			}
			if p != nil && u == p.Service {
				data, cfgPath, err := Render(root, p)
				if err == nil {
					err = writeAtomic(filepath.Join(root, cfgPath), data)
				}
				if err != nil {
					_ = os.WriteFile(filepath.Join(root, "var/log", u+".failed.log"), []byte(err.Error()+"\n"), 0o644)
					fmt.Fprintf(os.Stderr, "Job for %s.service failed because the control process exited with error code.\n"+
						"See \"systemctl status %s.service\" and \"journalctl -xeu %s.service\" for details.\n", u, u, u)
					return 1
				}
			}
		}
	case "is-active":
		for _, u := range units {
			if !known(u) {
				fmt.Println("inactive")
				return 3
			}
			fmt.Println("active")
		}
	case "status":
		for _, u := range units {
			if !known(u) {
				fmt.Fprintf(os.Stderr, "Unit %s.service could not be found.\n", u)
				return 4
			}
			fmt.Printf("● %s.service\n     Loaded: loaded (/usr/local/lib/systemd/system/%s.service; enabled; preset: enabled)\n     Active: active (running)\n", u, u)
		}
	}
	return 0
}

// ---- real nodes (tests/e2e/realnode) ----

// realNodeControl is the control socket of a real test node's init (its PID 1, which runs the
// node's containerd and kubelet as the rke2-agent unit). Present only inside a real node.
const realNodeControl = "/run/rke2gpu/systemd.sock"

func realNodeSocket() string {
	if st, err := os.Stat(realNodeControl); err == nil && st.Mode()&os.ModeSocket != 0 {
		return realNodeControl
	}
	return ""
}

// forward hands a systemctl or systemd-run call to the node's init and prints its answer.
func forward(sock, argv0 string, args []string) int {
	c, err := net.Dial("unix", sock)
	if err != nil {
		fmt.Fprintf(os.Stderr, "Failed to connect to bus: %v\n", err)
		return 1
	}
	defer c.Close()
	req, _ := json.Marshal(map[string]any{"argv0": argv0, "args": args})
	if _, err := c.Write(append(req, '\n')); err != nil {
		fmt.Fprintf(os.Stderr, "Failed to connect to bus: %v\n", err)
		return 1
	}
	var resp struct {
		RC     int    `json:"rc"`
		Stdout string `json:"stdout"`
		Stderr string `json:"stderr"`
	}
	if err := json.NewDecoder(bufio.NewReader(c)).Decode(&resp); err != nil {
		fmt.Fprintf(os.Stderr, "Failed to get reply: %v\n", err)
		return 1
	}
	fmt.Fprint(os.Stdout, resp.Stdout)
	fmt.Fprint(os.Stderr, resp.Stderr)
	return resp.RC
}

// systemdRun: on a real node the init runs the transient unit (or timer); elsewhere there is no
// systemd, as on a machine without it.
func systemdRun(args []string) int {
	if sock := realNodeSocket(); sock != "" {
		return forward(sock, "systemd-run", args)
	}
	fmt.Fprintln(os.Stderr, "Failed to connect to bus: No such file or directory")
	return 1
}

// ---- nsenter stub ----

// nsenter emulates `nsenter -t 1 -m [-u -i -n -p ...] [--] [cmd...]` in a node sandbox: entering
// the host's mount namespace means entering the node tree, i.e. chroot /host. Other namespaces
// are ignored (there is only one network/PID/... namespace here).
func nsenter(args []string) int {
	mount := false
	i := 0
	for ; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			i++
			break
		}
		if !strings.HasPrefix(a, "-") {
			break
		}
		switch {
		case a == "-t" || a == "--target" || a == "-S" || a == "--setuid" || a == "-G" || a == "--setgid" ||
			a == "-w" || a == "--wd" || a == "-r" || a == "--root":
			i++ // flag with a separate value
		case a == "-m" || strings.HasPrefix(a, "--mount") || a == "-a" || a == "--all":
			mount = true
		case strings.HasPrefix(a, "-") && !strings.HasPrefix(a, "--"):
			// combined short flags like -mu or -t1
			if strings.ContainsAny(a[1:], "ma") && !strings.HasPrefix(a, "-t") {
				mount = true
			}
		}
	}
	cmd := args[i:]
	if len(cmd) == 0 {
		cmd = []string{"/bin/sh"}
	}
	if mount {
		root := hostRoot()
		if root != "/" {
			if err := syscall.Chroot(root); err != nil {
				fmt.Fprintf(os.Stderr, "nsenter: reassociate to namespace 'ns/mnt' failed: %v\n", err)
				return 1
			}
			_ = os.Chdir("/")
		}
	}
	path, err := exec.LookPath(cmd[0])
	if err != nil {
		fmt.Fprintf(os.Stderr, "nsenter: failed to execute %s: No such file or directory\n", cmd[0])
		return 127
	}
	err = syscall.Exec(path, cmd, os.Environ())
	fmt.Fprintf(os.Stderr, "nsenter: failed to execute %s: %v\n", cmd[0], err)
	return 126
}

func main() {
	switch filepath.Base(os.Args[0]) {
	case "systemctl":
		os.Exit(systemctl(os.Args[1:]))
	case "nsenter":
		os.Exit(nsenter(os.Args[1:]))
	case "systemd-run":
		os.Exit(systemdRun(os.Args[1:]))
	}
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: render-config render --root DIR --profile NODE [--out FILE|-] | profiles | systemctl ARGS...")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "render":
		err = cmdRender(os.Args[2:])
	case "profiles":
		entries, _ := fs.ReadDir(embedded, "profiles")
		for _, e := range entries {
			fmt.Println(strings.TrimSuffix(e.Name(), ".json"))
		}
	case "systemctl":
		os.Exit(systemctl(os.Args[2:]))
	case "nsenter":
		os.Exit(nsenter(os.Args[2:]))
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "render-config:", err)
		os.Exit(1)
	}
}
