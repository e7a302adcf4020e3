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

{{/* Every object's labels but the component, which each object names once (a second
`app.kubernetes.io/component` key would be a duplicate key, which YAML forbids). */}}
{{- define "superstock.commonLabels" -}}
helm.sh/chart: {{ include "superstock.chart" . }}
app.kubernetes.io/name: {{ include "superstock.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: superstock
{{- end }}

{{/* The service's own objects. */}}
{{- define "superstock.labels" -}}
{{ include "superstock.commonLabels" . }}
app.kubernetes.io/component: service
{{- end }}

{{/* Another component's objects (MongoDB, Redis, the k6 Job): include with (list $ "redis"). */}}
{{- define "superstock.componentLabels" -}}
{{ include "superstock.commonLabels" (index . 0) }}
app.kubernetes.io/component: {{ index . 1 }}
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

{{/* The Kubernetes elector runs only in primary mode with the kubernetes backend: only then do the
replicas use the API (the Lease, their pod's role label), and only then are its RBAC and the
primary Service rendered. In allotments mode every replica sells and none is elected. */}}
{{- define "superstock.kubeElection" -}}
{{- if and (eq .Values.cluster.mode "primary") (eq .Values.election.backend "kubernetes") }}true{{ end }}
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

{{/*
What the Secret is made from, for the pods' checksum/secret annotation: every input a user sets,
never the generated admin token. Hashing the rendered Secret instead rolled every pod on the first
upgrade after an install: the install's checksum came from a second randAlphaNum render, the
upgrade's from the token `lookup` found. A generated token never changes once stored, so leaving
it out loses nothing; a token, URL or Secret name set by hand still rolls the pods.
*/}}
{{- define "superstock.secretInputs" -}}
adminToken: {{ .Values.adminToken | quote }}
existingAdminTokenSecret: {{ .Values.existingAdminTokenSecret | quote }}
mongo: {{ if .Values.externalMongodb.existingSecret }}{{ printf "secret %s" .Values.externalMongodb.existingSecret | quote }}{{ else }}{{ include "superstock.mongoUrl" . | quote }}{{ end }}
redis: {{ if .Values.externalRedis.existingSecret }}{{ printf "secret %s" .Values.externalRedis.existingSecret | quote }}{{ else }}{{ include "superstock.redisUrl" . | quote }}{{ end }}
{{- end }}

{{/*
WORKERS follows the pod's CPU, not the node's: with `workers: 0` the downward API hands the
container its own CPU limit (or, without one, its request), rounded up to whole CPUs by the
divisor, so never below 1. Node's own default would not do: libuv honours a cgroup quota only
rounded down and ignores one below a whole CPU, and with no CPU limit there is no quota at all,
so every pod would start one worker per CPU of the node.
*/}}
{{- define "superstock.workersEnv" -}}
{{- $resources := .Values.resources | default dict }}
{{- $limits := $resources.limits | default dict }}
{{- $requests := $resources.requests | default dict }}
- name: WORKERS
{{- if .Values.workers }}
  value: {{ .Values.workers | quote }}
{{- else if $limits.cpu }}
  valueFrom: { resourceFieldRef: { containerName: superstock, resource: limits.cpu, divisor: "1" } }
{{- else if $requests.cpu }}
  valueFrom: { resourceFieldRef: { containerName: superstock, resource: requests.cpu, divisor: "1" } }
{{- else }}
{{- fail "workers: 0 takes the worker count from the pod's CPU: set resources.limits.cpu (or resources.requests.cpu), or set workers" }}
{{- end }}
{{- end }}
