{{/* Name prefix of every object: the release name, plus "-dcs-csi" unless it already contains it. */}}
{{- define "dcs-csi.fullname" -}}
{{- if contains "dcs-csi" .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-dcs-csi" .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "dcs-csi.labels" -}}
app.kubernetes.io/name: dcs-csi
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* Selector labels; call with (dict "ctx" . "component" "node"). */}}
{{- define "dcs-csi.selectorLabels" -}}
app.kubernetes.io/name: dcs-csi
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "dcs-csi.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}

{{/* Directory of the plugin socket and state on the host. */}}
{{- define "dcs-csi.pluginDir" -}}
{{- printf "%s/plugins/%s" (trimSuffix "/" .Values.kubeletDir) .Values.driverName -}}
{{- end -}}

{{/* Name of the store Secret: existingSecret, or the one this chart creates, or "". */}}
{{- define "dcs-csi.storeSecret" -}}
{{- if .Values.store.existingSecret -}}
{{- .Values.store.existingSecret -}}
{{- else if or .Values.store.accessKeyID .Values.store.secretAccessKey -}}
{{- if not (and .Values.store.accessKeyID .Values.store.secretAccessKey) -}}
{{- fail "store: give both accessKeyID and secretAccessKey (or store.existingSecret)" -}}
{{- end -}}
{{- printf "%s-store" (include "dcs-csi.fullname" .) -}}
{{- end -}}
{{- end -}}

{{/* Shared container args of the driver (controller and node). */}}
{{- define "dcs-csi.commonArgs" -}}
- --endpoint=unix:///csi/csi.sock
- --node-id=$(NODE_NAME)
- --driver-name={{ .Values.driverName }}
{{- end -}}

{{- define "dcs-csi.logArgs" -}}
- --log-format={{ .Values.logFormat }}
- --log-level={{ .Values.logLevel }}
{{- end -}}

{{- define "dcs-csi.livenessProbe" -}}
livenessProbe:
  httpGet:
    path: /healthz
    port: healthz
  initialDelaySeconds: 10
  periodSeconds: 20
  timeoutSeconds: 5
  failureThreshold: 5
{{- end -}}

{{- define "dcs-csi.restrictedContainer" -}}
securityContext:
  allowPrivilegeEscalation: false
  readOnlyRootFilesystem: true
  capabilities:
    drop: ["ALL"]
{{- end -}}
