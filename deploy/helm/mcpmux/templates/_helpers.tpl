{{/* The chart's names and labels. */}}
{{- define "mcpmux.fullname" -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "mcpmux.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end -}}

{{- define "mcpmux.selector" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "mcpmux.secretName" -}}
{{- .Values.secret.existingSecret | default (include "mcpmux.fullname" .) -}}
{{- end -}}

{{- define "mcpmux.redisUrl" -}}
{{- if .Values.cluster.redisUrl -}}
{{- .Values.cluster.redisUrl -}}
{{- else -}}
{{- printf "redis://%s-valkey-primary:6379/0" .Release.Name -}}
{{- end -}}
{{- end -}}
