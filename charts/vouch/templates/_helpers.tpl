{{/* Name of the chart, for labels. */}}
{{- define "vouch.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name of the objects: the release name, with the chart name unless it holds it. */}}
{{- define "vouch.fullname" -}}
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

{{- define "vouch.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels every object carries. */}}
{{- define "vouch.labels" -}}
helm.sh/chart: {{ include "vouch.chart" . }}
{{ include "vouch.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: vouch
{{- end }}

{{/* Labels selecting vouch's Pods. */}}
{{- define "vouch.selectorLabels" -}}
app.kubernetes.io/name: {{ include "vouch.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "vouch.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "vouch.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The Secret holding the serving certificate (tls.crt, tls.key). */}}
{{- define "vouch.tlsSecretName" -}}
{{- if .Values.tls.existingSecret }}
{{- .Values.tls.existingSecret }}
{{- else }}
{{- printf "%s-tls" (include "vouch.fullname" .) }}
{{- end }}
{{- end }}

{{/* DNS names of the Service, as the API server calls it and the certificate names it. */}}
{{- define "vouch.serviceDNSNames" -}}
{{- $svc := include "vouch.fullname" . }}
{{- $ns := .Release.Namespace }}
{{- list $svc (printf "%s.%s" $svc $ns) (printf "%s.%s.svc" $svc $ns) (printf "%s.%s.svc.cluster.local" $svc $ns) | toJson }}
{{- end }}

{{- define "vouch.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag }}
{{- $ref := printf "%s:%s" .Values.image.repository $tag }}
{{- if .Values.image.digest }}
{{- $ref = printf "%s@%s" $ref .Values.image.digest }}
{{- end }}
{{- $ref }}
{{- end }}

{{/*
clientConfig of a webhook: the Service at a path, or webhook.url + path. Called with
(dict "root" $ "path" "/mutate" "caBundle" BASE64).
*/}}
{{- define "vouch.clientConfig" -}}
{{- $root := .root }}
{{- if $root.Values.webhook.url }}
url: {{ printf "%s%s" (trimSuffix "/" $root.Values.webhook.url) .path | quote }}
{{- else }}
service:
  name: {{ include "vouch.fullname" $root }}
  namespace: {{ $root.Release.Namespace }}
  path: {{ .path | quote }}
  port: {{ $root.Values.service.port }}
{{- end }}
{{- if .caBundle }}
caBundle: {{ .caBundle }}
{{- end }}
{{- end }}

{{/* Rules of the image webhooks: Pods and every built-in workload holding a Pod template. */}}
{{- define "vouch.podRules" -}}
- operations: [CREATE, UPDATE]
  apiGroups: [""]
  apiVersions: ["*"]
  resources: [pods, replicationcontrollers]
  scope: "*"
- operations: [CREATE, UPDATE]
  apiGroups: [apps]
  apiVersions: ["*"]
  resources: [deployments, statefulsets, daemonsets, replicasets]
  scope: "*"
- operations: [CREATE, UPDATE]
  apiGroups: [batch]
  apiVersions: ["*"]
  resources: [jobs, cronjobs]
  scope: "*"
{{- end }}

{{/*
namespaceSelector of the image webhooks: never the release namespace (vouch must be able to
restart while its webhooks are down) nor webhook.excludedNamespaces, plus webhook.namespaceSelector.
*/}}
{{- define "vouch.namespaceSelector" -}}
{{- $excluded := prepend (.Values.webhook.excludedNamespaces | default list) .Release.Namespace | uniq }}
{{- with .Values.webhook.namespaceSelector.matchLabels }}
matchLabels:
  {{- toYaml . | nindent 2 }}
{{- end }}
matchExpressions:
  - key: kubernetes.io/metadata.name
    operator: NotIn
    values:
      {{- toYaml $excluded | nindent 6 }}
{{- with .Values.webhook.namespaceSelector.matchExpressions }}
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/* A Kubernetes memory quantity (512Mi, 1Gi, 500M, 1048576) in bytes. */}}
{{- define "vouch.bytes" -}}
{{- $q := toString . }}
{{- $units := dict "Ki" 1024 "Mi" 1048576 "Gi" 1073741824 "Ti" 1099511627776 "k" 1000 "M" 1000000 "G" 1000000000 "T" 1000000000000 }}
{{- $n := regexFind "^[0-9]+" $q }}
{{- $unit := trimPrefix $n $q }}
{{- if not $n }}
{{- fail (printf "cannot read the memory quantity %q" $q) }}
{{- else if eq $unit "" }}
{{- $n }}
{{- else if hasKey $units $unit }}
{{- mul (atoi $n) (get $units $unit) }}
{{- else }}
{{- fail (printf "cannot read the memory quantity %q" $q) }}
{{- end }}
{{- end }}

{{/* "true" when background scans are on (backgroundScan.interval set and not zero); they need
PolicyReports. */}}
{{- define "vouch.backgroundScan" -}}
{{- $i := toString (.Values.backgroundScan.interval | default "") -}}
{{- if and $i (ne $i "0") (ne $i "0s") -}}
{{- if not .Values.policyReports.enabled -}}
{{- fail "backgroundScan.interval needs policyReports.enabled: the scans' results are PolicyReports" -}}
{{- end -}}
true
{{- end -}}
{{- end -}}
