//! The help texts of `helm rke2gpu` (clap `about`, `long_about`,
//! `after_help`).

pub const ABOUT: &str =
    "Install the NVIDIA GPU Operator on RKE2/K3s with values computed from your nodes";

pub const LONG_ABOUT: &str = "\
Install the NVIDIA GPU Operator on RKE2/K3s with values computed from your nodes.

Reads the nodes (RKE2 release, containerd version, GPU labels, CIS profile) and the
chart's Chart.yaml/values.yaml, and computes the values RKE2 needs: the containerd
socket for the toolkit, the isolation envs and the toolkit pin the chart version needs,
CDI on or off by containerd generation, NRI on request. Every value comes with a `# why`
comment naming its source.

The computed values go to Helm FIRST (-f computed.yaml); your own -f/--set follow,
so your values win. Helm's global flags (-n, --kube-context, --kubeconfig) reach the
plugin as HELM_NAMESPACE, HELM_KUBECONTEXT and KUBECONFIG and are honoured.";

pub const EXAMPLES: &str = "\
Examples:
  helm rke2gpu values                                  # values for nvidia/gpu-operator (latest)
  helm rke2gpu values nvidia/gpu-operator --version v26.7.0
  helm rke2gpu values ./gpu-operator-v26.7.0.tgz --nodes-file nodes.json
  helm rke2gpu values --time-slicing 4                 # share each GPU among 4 pods
  helm rke2gpu images nvidia/gpu-operator --version v26.7.0 -o plain   # for an air-gap mirror
  helm rke2gpu install --version v26.7.0 --wait        # release gpu-operator in ns gpu-operator
  helm rke2gpu install --print-command                 # show the plain helm command instead
  helm rke2gpu install --output helmchart > gpu-operator.yaml   # RKE2 HelmChart manifest
  helm rke2gpu upgrade gpu-operator nvidia/gpu-operator --version v26.7.0   # CRDs first, asks
  helm rke2gpu upgrade gpu-operator ./gpu-operator-v26.7.0.tgz --dry-run    # diffs only
  helm rke2gpu upgrade gpu-operator nvidia/gpu-operator --version v26.7.0 --yes --wait
  helm rke2gpu uninstall
  helm rke2gpu completion bash > /etc/bash_completion.d/helm-rke2gpu";

pub const PASSTHROUGH_HELP: &str = "\
Arguments: [NAME] [CHART] [FLAGS...]
  NAME   release name (default gpu-operator); CHART chart reference, .tgz or directory
         (default nvidia/gpu-operator). A lone argument containing '/' or ending in .tgz
         is the CHART.

Our flags (consumed):
  --nri                 use the operator's NRI plugin (a chart that has it, and a
                        containerd that supports it on every GPU node: `values` says
                        which when it refuses); no toolkit env
  --legacy-2021         emit the 2021-2024 NVIDIA values (CONTAINERD_CONFIG=...config.toml.tmpl):
                        freezes RKE2's containerd config; do not use unless you must
  --force               install a chart known to fail on RKE2 / force a CDI choice /
                        keep an operator.runtimeClass RKE2 does not render
                        (on upgrade --force is Helm's: use --rke2gpu-force)
  --rke2gpu-force       same as --force, on every command
  --allow-generic       allow clusters without RKE2/K3s nodes (generic values only)
  --cdi true|false      override cdi.enabled
  --time-slicing N | --mps N  share each GPU among N pods (the device plugin config as
                        devicePlugin.config, every GPU node); --rename-shared (nvidia.com/gpu.shared),
                        --fail-requests-greater-than-one, --sharing-per-node (label nodes
                        nvidia.com/device-plugin.config=rke2gpu-shared instead)
  --mirror REGISTRY     pull every operand image from this mirror (repositories moved to its host)
  --os auto|sles16|other  the GPU nodes' OS for the OS vendor's driver values (SLES 16:
                        SUSE's precompiled driver images); auto reads the nodes' osImage
  --cis                 treat the cluster as RKE2 profile: cis (label the namespace
                        PSA-privileged) when the rke2.io/node-args annotation is missing
  --nodes-file FILE     read nodes from `kubectl get nodes -o json` output, not the cluster
  --print-command       print the equivalent plain helm command (--set/--set-string) and exit
  --output helmchart    print an RKE2 HelmChart (helm.cattle.io/v1) manifest and exit

On upgrade, before helm runs: the values diff against the deployed release, a warning per key
you set that the target chart's values.yaml lacks, and the chart's CRDs against the cluster's
(new/removed spec fields, what the ClusterPolicy schemas prune). The changed CRDs are then
server-side applied (field manager helm-rke2gpu), because Helm never upgrades crds/:
  --yes                 apply them without asking (on a terminal it asks; with no terminal
                        it applies, as the chart's own pre-upgrade hook does; --dry-run only shows)
  --skip-crds           do not apply them (also passed to helm): fields only the new CRDs
                        have are pruned by the API server

Every other flag goes to helm verbatim, in order (--version is read AND passed on;
--wait, --timeout, --dry-run, --set, --set-string, -f, ...). Give flags unknown to
this plugin that take a value as --flag=value. Your -f/--set values are also read (not
merged) to refuse what cannot work: an operator.runtimeClass other than nvidia,
nvidia-experimental or nvidia-cdi; toolkit.enabled=false or cdi.enabled=false with NRI.";
