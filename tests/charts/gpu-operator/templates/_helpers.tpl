{{- define "gpu-operator.fullname" -}}gpu-operator{{- end }}

{{- define "gpu-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end }}

{{- define "gpu-operator.labels" -}}
app.kubernetes.io/name: gpu-operator
helm.sh/chart: {{ include "gpu-operator.chart" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "gpu-operator.operand-labels" -}}
helm.sh/chart: {{ include "gpu-operator.chart" . }}
app.kubernetes.io/managed-by: gpu-operator
{{- end }}

{{- define "gpu-operator.image" -}}
{{- $v := .version | default .appVersion -}}
{{- if hasPrefix "sha256:" $v -}}{{ .repository }}/{{ .image }}@{{ $v }}{{- else -}}{{ .repository }}/{{ .image }}:{{ $v }}{{- end -}}
{{- end }}
