//! What Helm leaves behind after `helm uninstall` of the GPU Operator, as
//! the notes `helm rke2gpu uninstall` prints.

/// The cleanup notes for an operator that lived in `namespace`.
pub fn cleanup_notes(namespace: &str) -> String {
    format!(
        "\
Helm leaves these behind after removing the GPU Operator:

  1. /usr/local/nvidia on every GPU node: the toolkit the operator installed. RKE2/K3s look
     for nvidia-container-runtime there first, so a leftover copy shadows a host toolkit
     and keeps a stale runtime configured (k3s-io/k3s#4391). On each GPU node:
       sudo rm -rf /usr/local/nvidia
       sudo systemctl restart rke2-agent     # rke2-server on servers; k3s-agent/k3s on K3s
  2. RuntimeClass nvidia: created by RKE2's rke2-runtimeclasses chart, not by the operator.
     Leave it.
  3. CRDs: Helm does not delete CRDs. When no GPU Operator remains:
       kubectl delete crd clusterpolicies.nvidia.com nvidiadrivers.nvidia.com
  4. The namespace, if nothing else lives there:
       kubectl delete namespace {namespace}
"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_name_the_namespace_crds_and_toolkit_dir() {
        let n = cleanup_notes("gpu-ops");
        assert!(n.contains("kubectl delete namespace gpu-ops\n"));
        assert!(n.contains("clusterpolicies.nvidia.com nvidiadrivers.nvidia.com"));
        assert!(n.contains("sudo rm -rf /usr/local/nvidia"));
    }
}
