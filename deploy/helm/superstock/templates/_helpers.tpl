{{/* Names and labels, in the manner of the community charts. */}}

{{- define "superstock.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "superstock.fullname" -}}
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

{{- define "superstock.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "superstock.labels" -}}
helm.sh/chart: {{ include "superstock.chart" . }}
{{ include "superstock.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: superstock
{{- end }}

{{- define "superstock.selectorLabels" -}}
app.kubernetes.io/name: {{ include "superstock.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: service
{{- end }}

{{/* The same labels as one label selector string, for the elector's list of this release's pods. */}}
{{- define "superstock.podSelector" -}}
{{- printf "app.kubernetes.io/name=%s,app.kubernetes.io/instance=%s,app.kubernetes.io/component=service" (include "superstock.name" .) .Release.Name }}
{{- end }}

{{- define "superstock.leaseName" -}}
{{- default (printf "%s-primary" (include "superstock.fullname" .)) .Values.election.leaseName | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "superstock.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "superstock.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "superstock.secretName" -}}
{{- include "superstock.fullname" . }}
{{- end }}

{{- define "superstock.adminTokenSecret" -}}
{{- default (include "superstock.secretName" .) .Values.existingAdminTokenSecret }}
{{- end }}

{{- define "superstock.mongoSecret" -}}
{{- default (include "superstock.secretName" .) .Values.externalMongodb.existingSecret }}
{{- end }}

{{- define "superstock.redisSecret" -}}
{{- default (include "superstock.secretName" .) .Values.externalRedis.existingSecret }}
{{- end }}

{{- define "superstock.mongoUrl" -}}
{{- if .Values.mongodb.enabled }}
{{- printf "mongodb://%s-mongodb:27017/" (include "superstock.fullname" .) }}
{{- else }}
{{- required "set externalMongodb.url (or externalMongodb.existingSecret) when mongodb.enabled=false" .Values.externalMongodb.url }}
{{- end }}
{{- end }}

{{- define "superstock.redisUrl" -}}
{{- if .Values.redis.enabled }}
{{- printf "redis://%s-redis:6379" (include "superstock.fullname" .) }}
{{- else }}
{{- required "set externalRedis.url (or externalRedis.existingSecret) when redis.enabled=false" .Values.externalRedis.url }}
{{- end }}
{{- end }}
