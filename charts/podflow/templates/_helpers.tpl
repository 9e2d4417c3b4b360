{{/*
Chart name, at most 63 characters (DNS label).
*/}}
{{- define "podflow.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name: release name and chart name, unless the release name already holds the chart name.
*/}}
{{- define "podflow.fullname" -}}
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

{{/*
Name of a component's objects: fullname-component, e.g. podflow-collector.
*/}}
{{- define "podflow.componentName" -}}
{{- printf "%s-%s" (include "podflow.fullname" .root | trunc 52 | trimSuffix "-") .component }}
{{- end }}

{{/*
chart label: name-version.
*/}}
{{- define "podflow.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels of every object.
*/}}
{{- define "podflow.labels" -}}
helm.sh/chart: {{ include "podflow.chart" . }}
{{ include "podflow.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: podflow
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Selector labels of the release.
*/}}
{{- define "podflow.selectorLabels" -}}
app.kubernetes.io/name: {{ include "podflow.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Labels of a component's objects; call with (dict "root" $ "component" "collector").
*/}}
{{- define "podflow.componentLabels" -}}
{{ include "podflow.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/*
Selector labels of a component.
*/}}
{{- define "podflow.componentSelectorLabels" -}}
{{ include "podflow.selectorLabels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/*
ServiceAccount name.
*/}}
{{- define "podflow.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "podflow.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The image, repository:tag; the tag defaults to the chart's appVersion.
*/}}
{{- define "podflow.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/*
The image the webhook injects: its own repository and tag, else the chart's.
*/}}
{{- define "podflow.sidecarImage" -}}
{{- $img := .Values.webhook.sidecar.image }}
{{- printf "%s:%s" (default .Values.image.repository $img.repository) (default (default .Chart.AppVersion .Values.image.tag) $img.tag) }}
{{- end }}

{{/*
The collector Service's name and its IPFIX address, HOST:PORT, as probes and sidecars reach it.
*/}}
{{- define "podflow.collectorService" -}}
{{- include "podflow.componentName" (dict "root" . "component" "collector") }}
{{- end }}

{{- define "podflow.collectorAddress" -}}
{{- printf "%s.%s.svc.%s:%d" (include "podflow.collectorService" .) .Release.Namespace .Values.clusterDomain (int .Values.collector.ipfixPort) }}
{{- end }}

{{/*
Interface patterns of the node probe: probe.interfaces, else the probe.cni preset; then probe.extraInterfaces.
*/}}
{{- define "podflow.probeInterfaces" -}}
{{- $presets := dict "calico" (list "cali*") "cilium" (list "lxc*") "flannel" (list "veth*") "bridge" (list "cni0") "auto" (list "cali*" "lxc*" "veth*") }}
{{- $list := .Values.probe.interfaces }}
{{- if not $list }}
{{- $list = get $presets .Values.probe.cni }}
{{- if not $list }}
{{- fail (printf "probe.cni %q is not one of auto, calico, cilium, flannel, bridge" .Values.probe.cni) }}
{{- end }}
{{- end }}
{{- concat $list .Values.probe.extraInterfaces | uniq | toJson }}
{{- end }}

{{/*
Webhook TLS Secret name.
*/}}
{{- define "podflow.webhookTLSSecret" -}}
{{- printf "%s-tls" (include "podflow.componentName" (dict "root" . "component" "webhook")) }}
{{- end }}

{{/*
An httpGet health probe: (dict "path" "/healthz" "port" "http" "timing" .Values.x.livenessProbe).
*/}}
{{- define "podflow.httpProbe" -}}
httpGet:
  path: {{ .path }}
  port: {{ .port }}
  {{- with .scheme }}
  scheme: {{ . }}
  {{- end }}
{{ toYaml .timing }}
{{- end }}

{{/*
DNS names of the webhook's Service, as a JSON list.
*/}}
{{- define "podflow.webhookDNSNames" -}}
{{- $svc := include "podflow.componentName" (dict "root" . "component" "webhook") }}
{{- list $svc (printf "%s.%s" $svc .Release.Namespace) (printf "%s.%s.svc" $svc .Release.Namespace) (printf "%s.%s.svc.%s" $svc .Release.Namespace .Values.clusterDomain) | toJson }}
{{- end }}

{{/*
The helm-made webhook TLS material as Secret data (base64 ca.crt, tls.crt, tls.key): the Secret already in
the cluster when it holds all three (upgrades keep the certificate the API server trusts), else a new CA
and a serving certificate signed by it. Rendered once per release and cached, so the Secret, the
caBundle and the pods' checksum agree within one render.
*/}}
{{- define "podflow.webhookTLS" -}}
{{- $cache := .Values.webhook.selfSigned }}
{{- if not (hasKey $cache "_rendered") }}
{{- $name := include "podflow.webhookTLSSecret" . }}
{{- $existing := lookup "v1" "Secret" .Release.Namespace $name }}
{{- $data := dict }}
{{- if and $existing $existing.data (hasKey $existing.data "ca.crt") (hasKey $existing.data "tls.crt") (hasKey $existing.data "tls.key") }}
{{- $data = dict "ca.crt" (index $existing.data "ca.crt") "tls.crt" (index $existing.data "tls.crt") "tls.key" (index $existing.data "tls.key") }}
{{- else }}
{{- $days := int .Values.webhook.selfSigned.validityDays }}
{{- $ca := genCA (printf "%s-ca" $name) $days }}
{{- $svc := include "podflow.componentName" (dict "root" . "component" "webhook") }}
{{- $cert := genSignedCert (printf "%s.%s.svc" $svc .Release.Namespace) nil (include "podflow.webhookDNSNames" . | fromJsonArray) $days $ca }}
{{- $data = dict "ca.crt" ($ca.Cert | b64enc) "tls.crt" ($cert.Cert | b64enc) "tls.key" ($cert.Key | b64enc) }}
{{- end }}
{{- $_ := set $cache "_rendered" $data }}
{{- end }}
{{- toYaml (get $cache "_rendered") }}
{{- end }}
