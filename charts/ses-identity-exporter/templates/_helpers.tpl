{{/*
Names and labels, as `helm create` makes them: the full name is the release
name, or release-chart when the release name does not contain the chart's.
*/}}
{{- define "ses-identity-exporter.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "ses-identity-exporter.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "ses-identity-exporter.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "ses-identity-exporter.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ses-identity-exporter.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "ses-identity-exporter.labels" -}}
helm.sh/chart: {{ include "ses-identity-exporter.chart" . }}
{{ include "ses-identity-exporter.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: ses-identity-exporter
{{- end }}

{{- define "ses-identity-exporter.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "ses-identity-exporter.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "ses-identity-exporter.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
The job label the shipped rules and dashboard select on (the mixin's default
selector, job="ses-identity-exporter"). Not a value: the rules in files/ are
rendered with it, so another job would match none of them.
*/}}
{{- define "ses-identity-exporter.job" -}}
ses-identity-exporter
{{- end }}

{{/*
A probe from values; with webConfig.tls its httpGet speaks HTTPS (the kubelet
does not check the certificate).
*/}}
{{- define "ses-identity-exporter.probe" -}}
{{- $probe := deepCopy .probe }}
{{- if and .tls $probe.httpGet }}
{{- $_ := set $probe.httpGet "scheme" "HTTPS" }}
{{- end }}
{{- toYaml $probe }}
{{- end }}
