{{/*
Shared named templates. Components pass a dict: .root (the top context), .name (the component:
gateway, scraper, retriever, ingest, imagegen, vllm, rabbitmq, qdrant, postgresql, redis, migrations)
and .values (its values block) where needed.
*/}}

{{/* The release-scoped base name of every object: <release>, or <release>-genai. */}}
{{- define "genai.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end }}

{{/* The name of a component's objects: (dict "root" $ "name" "gateway"). */}}
{{- define "genai.componentName" -}}
{{- printf "%s-%s" (include "genai.fullname" .root) .name -}}
{{- end }}

{{/* A component's Service DNS name, fully qualified. */}}
{{- define "genai.host" -}}
{{- printf "%s.%s.svc.%s" (include "genai.componentName" .) .root.Release.Namespace .root.Values.clusterDomain -}}
{{- end }}

{{/* Labels that select a component's pods. */}}
{{- define "genai.selectorLabels" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .name }}
{{- end }}

{{/* Labels of every object (not pod templates: a chart bump must not restart pods). */}}
{{- define "genai.labels" -}}
{{ include "genai.selectorLabels" . }}
app.kubernetes.io/part-of: genai
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" }}
{{- end }}

{{/* The image tag of a component: its tag, else the chart's appVersion. */}}
{{- define "genai.imageTag" -}}
{{- .values.image.tag | default .root.Chart.AppVersion -}}
{{- end }}

{{/* The version label: the image tag as a valid label value. */}}
{{- define "genai.version" -}}
{{- include "genai.imageTag" . | replace "+" "_" | trunc 63 | trimSuffix "-" | trimSuffix "." -}}
{{- end }}

{{/* repository:tag, or repository:tag@digest when a digest is given. */}}
{{- define "genai.image" -}}
{{- $image := printf "%s:%s" .values.image.repository (include "genai.imageTag" .) -}}
{{- if .values.image.digest -}}{{- $image = printf "%s@%s" $image .values.image.digest -}}{{- end -}}
{{- $image -}}
{{- end }}

{{/*
Labels of a component's pods: selector, part-of, the image tag as app.kubernetes.io/version, the
global and the component's podLabels. Extension point for labels that monitoring and rollouts
read (Prometheus podTargetLabels, canary hashes).
*/}}
{{- define "genai.podLabels" -}}
{{ include "genai.selectorLabels" . }}
app.kubernetes.io/part-of: genai
app.kubernetes.io/version: {{ include "genai.version" . | quote }}
{{- with .root.Values.podLabels }}
{{ toYaml . }}
{{- end }}
{{- with .values.podLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Standard object metadata: (dict "root" $ "name" "gateway" "values" .Values.gateway). */}}
{{- define "genai.metadata" -}}
name: {{ include "genai.componentName" . }}
namespace: {{ .root.Release.Namespace }}
labels:
  {{- include "genai.labels" . | nindent 2 }}
{{- end }}

{{/*
Where each component serves Prometheus metrics, when enabled: port (number), portName (of its
Service, or of its container for a PodMonitor), path, and monitor (ServiceMonitor or
PodMonitor). The NetworkPolicies let Prometheus reach exactly these ports; monitoring.yaml
scrapes them.
*/}}
{{- define "genai.metricsEndpoints" -}}
{{- $v := .Values -}}
{{- $endpoints := dict -}}
{{- $service := "ServiceMonitor" -}}
{{- if $v.gateway.enabled }}{{ $_ := set $endpoints "gateway" (dict "port" $v.gateway.port "portName" "http" "path" "/metrics" "monitor" $service) }}{{ end }}
{{- if $v.scraper.enabled }}{{ $_ := set $endpoints "scraper" (dict "port" $v.scraper.metricsPort "portName" "metrics" "path" "/metrics" "monitor" $service) }}{{ end }}
{{- if $v.retriever.enabled }}{{ $_ := set $endpoints "retriever" (dict "port" $v.retriever.metricsPort "portName" "metrics" "path" "/metrics" "monitor" $service) }}{{ end }}
{{- if $v.ingest.enabled }}{{ $_ := set $endpoints "ingest" (dict "port" $v.ingest.metricsPort "portName" "metrics" "path" "/metrics" "monitor" "PodMonitor") }}{{ end }}
{{- if $v.imagegen.enabled }}{{ $_ := set $endpoints "imagegen" (dict "port" $v.imagegen.metricsPort "portName" "metrics" "path" "/metrics" "monitor" "PodMonitor") }}{{ end }}
{{- if $v.vllm.enabled }}{{ $_ := set $endpoints "vllm" (dict "port" $v.vllm.port "portName" "http" "path" "/metrics" "monitor" $service) }}{{ end }}
{{- if $v.rabbitmq.enabled }}{{ $_ := set $endpoints "rabbitmq" (dict "port" 15692 "portName" "prometheus" "path" "/metrics" "monitor" $service) }}{{ end }}
{{- if $v.qdrant.enabled }}{{ $_ := set $endpoints "qdrant" (dict "port" 6333 "portName" "http" "path" "/metrics" "monitor" $service) }}{{ end }}
{{- toYaml $endpoints -}}
{{- end }}

{{/* A map of name -> object rendered as a list, in name order (tolerations, parentRefs). */}}
{{- define "genai.mapValues" -}}
{{- $list := list -}}
{{- range $key := keys . | sortAlpha }}{{ $list = append $list (index $ $key) }}{{ end -}}
{{- toYaml $list -}}
{{- end }}

{{/*
Environment of a container: .computed (a list of env entries the chart sets: addresses, ports,
credentials) followed by .env (the component's values map, name -> string). A values key that
the chart sets itself fails the render instead of silently shadowing it.
*/}}
{{- define "genai.env" -}}
{{- $list := .computed -}}
{{- $set := dict -}}
{{- range $list }}{{ $_ := set $set .name true }}{{ end -}}
{{- range $key := keys .env | sortAlpha -}}
{{- if hasKey $set $key -}}
{{- fail (printf "%s.env.%s is set by the chart itself; use the chart's value for it" $.name $key) -}}
{{- end -}}
{{- $list = append $list (dict "name" $key "value" (toString (index $.env $key))) -}}
{{- end -}}
{{- toYaml $list -}}
{{- end }}

{{/* An env entry from a Secret key: (dict "name" "AMQP_URL" "secret" "s" "key" "k"). */}}
{{- define "genai.secretEnv" -}}
{{- toYaml (dict "name" .name "valueFrom" (dict "secretKeyRef" (dict "name" .secret "key" .key))) -}}
{{- end }}

{{/* Seconds SIGTERM may take: preStop pause + the service's shutdown grace + 15 s margin. */}}
{{- define "genai.terminationGrace" -}}
{{- add (int .root.Values.preStopSeconds) (int .values.shutdownGraceSeconds) 15 -}}
{{- end }}

{{/* Does the component ask for a GPU? */}}
{{- define "genai.usesGpu" -}}
{{- if or (hasKey (.values.resources.limits | default dict) "nvidia.com/gpu") (hasKey (.values.resources.requests | default dict) "nvidia.com/gpu") -}}true{{- end -}}
{{- end }}

{{/*
How a component scales: fixed | hpa-cpu | keda | hpa-external (see values.yaml, autoscaling).
A GPU workload never gets a CPU HPA.
*/}}
{{- define "genai.scaling" -}}
{{- $auto := .values.autoscaling -}}
{{- $cluster := .root.Values.autoscaling -}}
{{- if not $auto.enabled -}}fixed
{{- else if has .name (list "gateway" "scraper" "retriever") -}}hpa-cpu
{{- else if $cluster.keda.enabled -}}keda
{{- else if eq .name "ingest" -}}hpa-cpu
{{- else if $cluster.prometheusAdapter.enabled -}}hpa-external
{{- else -}}fixed
{{- end -}}
{{- end }}

{{/* Does the component roll out as an Argo Rollouts canary? (rollouts.enabled and rollouts.services.<name>) */}}
{{- define "genai.canary" -}}
{{- $rollouts := .root.Values.rollouts -}}
{{- if and $rollouts.enabled (index $rollouts.services .name | default false) -}}true{{- end -}}
{{- end }}

{{/* The apiVersion and kind of a component's workload: an Argo Rollout for a canary, else a Deployment. */}}
{{- define "genai.workloadRef" -}}
{{- if eq (include "genai.canary" .) "true" -}}
apiVersion: argoproj.io/v1alpha1
kind: Rollout
{{- else -}}
apiVersion: apps/v1
kind: Deployment
{{- end -}}
{{- end }}

{{/* The most replicas a component can run. */}}
{{- define "genai.maxReplicas" -}}
{{- if eq (include "genai.scaling" .) "fixed" -}}{{ int .values.replicas }}{{- else -}}{{ int .values.autoscaling.maxReplicas }}{{- end -}}
{{- end }}

{{/* Where the services find RabbitMQ: (dict "secret" ... "amqpKey" ... "managementKey" ...). */}}
{{- define "genai.rabbitmqSecret" -}}
{{- if .Values.rabbitmq.enabled -}}
{{- toYaml (dict "secret" (include "genai.componentName" (dict "root" . "name" "rabbitmq")) "amqpKey" "AMQP_URL" "managementKey" "RABBITMQ_MANAGEMENT_URL" "vhost" "/") -}}
{{- else -}}
{{- $e := .Values.externalRabbitmq -}}
{{- toYaml (dict "secret" $e.existingSecret "amqpKey" $e.amqpUrlKey "managementKey" $e.managementUrlKey "vhost" $e.vhost) -}}
{{- end -}}
{{- end }}

{{/* The gateway's database: "postgresql" (built-in), "external" or "sqlite". */}}
{{- define "genai.database" -}}
{{- if .Values.postgresql.enabled -}}postgresql
{{- else if .Values.externalDatabase.existingSecret -}}external
{{- else -}}sqlite
{{- end -}}
{{- end }}

{{/* Where the gateway counts its per-key limits: "redis" (built-in), "external" or "local" (each replica alone). */}}
{{- define "genai.rateLimits" -}}
{{- if .Values.redis.enabled -}}redis
{{- else if .Values.externalRedis.existingSecret -}}external
{{- else -}}local
{{- end -}}
{{- end }}

{{/* The retriever's vector store: "qdrant" (built-in), "external" or "embedded". */}}
{{- define "genai.vectorStore" -}}
{{- if .Values.qdrant.enabled -}}qdrant
{{- else if .Values.externalQdrant.url -}}external
{{- else -}}embedded
{{- end -}}
{{- end }}

{{/* The gateway's LLM: "vllm" (built-in), "external" or "none" (retrieval-only). */}}
{{- define "genai.llm" -}}
{{- if .Values.vllm.enabled -}}vllm
{{- else if .Values.llm.baseUrl -}}external
{{- else -}}none
{{- end -}}
{{- end }}

{{/* The Secret holding the LLM API key ("" when there is none). */}}
{{- define "genai.llmSecret" -}}
{{- if .Values.llm.existingSecret -}}{{ .Values.llm.existingSecret }}
{{- else if .Values.vllm.enabled -}}{{ include "genai.componentName" (dict "root" . "name" "llm") }}
{{- end -}}
{{- end }}

{{/*
A generated credential that survives upgrades: the value already in the release's Secret when
there is one, else a new random one. (dict "root" $ "secret" name "key" key).
*/}}
{{- define "genai.generatedCredential" -}}
{{- $existing := lookup "v1" "Secret" .root.Release.Namespace .secret -}}
{{- if and $existing $existing.data (hasKey $existing.data .key) -}}
{{- index $existing.data .key | b64dec -}}
{{- else -}}
{{- randAlphaNum 32 -}}
{{- end -}}
{{- end }}

{{/* The pod security context of a component: the global one with a component's user. */}}
{{- define "genai.podSecurityContext" -}}
{{- $context := deepCopy .root.Values.podSecurityContext -}}
{{- with .runAsUser }}
{{- $_ := set $context "runAsUser" (int .) -}}
{{- $_ := set $context "runAsGroup" (int .) -}}
{{- $_ := set $context "fsGroup" (int .) -}}
{{- end }}
{{- toYaml $context -}}
{{- end }}

{{/* Scheduling of a component's pods: nodeSelector, tolerations (a map), affinity, runtime class. */}}
{{- define "genai.scheduling" -}}
{{- with .values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.tolerations }}
tolerations:
  {{- include "genai.mapValues" . | nindent 2 }}
{{- end }}
{{- with .values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.runtimeClassName }}
runtimeClassName: {{ . }}
{{- end }}
{{- with .root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- range $name := keys . | sortAlpha }}
  - name: {{ $name }}
  {{- end }}
{{- end }}
{{- end }}

{{/* A component's ServiceAccount (no API token: no component talks to the Kubernetes API). */}}
{{- define "genai.serviceAccount" -}}
apiVersion: v1
kind: ServiceAccount
metadata:
  {{- include "genai.metadata" . | nindent 2 }}
automountServiceAccountToken: false
{{- end }}

{{/* A PersistentVolumeClaim: (dict "root" "name" "suffix" "size" "storageClassName" "accessMode"). */}}
{{- define "genai.pvc" -}}
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: {{ printf "%s-%s" (include "genai.componentName" .) .suffix }}
  namespace: {{ .root.Release.Namespace }}
  labels:
    {{- include "genai.labels" . | nindent 4 }}
spec:
  accessModes: [{{ .accessMode }}]
  {{- with .storageClassName }}
  storageClassName: {{ . }}
  {{- end }}
  resources:
    requests:
      storage: {{ .size }}
{{- end }}

{{/* The blob store's claim: an existing one, or the chart's. */}}
{{- define "genai.blobsClaim" -}}
{{- .Values.blobs.existingClaim | default (printf "%s-data" (include "genai.componentName" (dict "root" . "name" "blobs"))) -}}
{{- end }}

{{/* RabbitMQ's configuration (rendered into its Secret: it holds the default user's password). */}}
{{- define "genai.rabbitmqConf" -}}
{{- $v := .root.Values.rabbitmq -}}
{{- $name := include "genai.componentName" (dict "root" .root "name" "rabbitmq") -}}
default_user = genai
default_pass = {{ .password }}
default_vhost = /
listeners.tcp.default = 5672
management.tcp.port = 15672
prometheus.tcp.port = 15692
log.console = true
log.console.level = info
log.file = false
{{- if gt (int $v.replicas) 1 }}
cluster_formation.peer_discovery_backend = classic_config
{{- range $i := until (int $v.replicas) }}
cluster_formation.classic_config.nodes.{{ add $i 1 }} = rabbit@{{ $name }}-{{ $i }}.{{ $name }}-headless.{{ $.root.Release.Namespace }}.svc.{{ $.root.Values.clusterDomain }}
{{- end }}
cluster_partition_handling = pause_minority
# Quorum queues grow onto nodes that join later, up to three replicas.
quorum_queue.continuous_membership_reconciliation.enabled = true
quorum_queue.continuous_membership_reconciliation.target_group_size = 3
{{- end }}
{{- end }}

{{/*
Redis's configuration (rendered into its Secret: it holds the password). Persistence is switched
off on the command line as well (--save "" --appendonly no): the counters are ephemeral.
*/}}
{{- define "genai.redisConf" -}}
bind * -::*
port 6379
protected-mode yes
requirepass {{ .password }}
dir /data
maxmemory {{ .root.Values.redis.maxmemory }}
maxmemory-policy volatile-ttl
{{- end }}

{{/* A NetworkPolicy peer: the release's pods of one component, (dict "root" $ "name" "scraper"). */}}
{{- define "genai.peer" -}}
{{- toYaml (dict "podSelector" (dict "matchLabels" (include "genai.selectorLabels" . | fromYaml))) -}}
{{- end }}

{{/* A NetworkPolicy peer: every pod of namespaces with these labels (and pods with podLabels). */}}
{{- define "genai.namespacePeer" -}}
{{- $peer := dict "namespaceSelector" (dict "matchLabels" .namespaceLabels) -}}
{{- with .podLabels }}{{ $_ := set $peer "podSelector" (dict "matchLabels" .) }}{{ end -}}
{{- toYaml $peer -}}
{{- end }}

{{/* An egress rule to an external dependency: its port, to its CIDRs (or anywhere when none given). */}}
{{- define "genai.externalEgress" -}}
{{- $rule := dict "ports" (list (dict "protocol" "TCP" "port" (int .port))) -}}
{{- with .cidrs }}
{{- $to := list -}}
{{- range $key := keys . | sortAlpha }}{{ $to = append $to (dict "ipBlock" (dict "cidr" (index $.cidrs $key))) }}{{ end -}}
{{- $_ := set $rule "to" $to -}}
{{- end }}
{{- toYaml (list $rule) -}}
{{- end }}

{{/*
The public internet as NetworkPolicy peers: every IPv4 and IPv6 address except private, shared
(CGNAT), link-local (cloud metadata), loopback and the cluster's own ranges.
*/}}
{{- define "genai.publicInternet" -}}
{{- $v4 := list "10.0.0.0/8" "172.16.0.0/12" "192.168.0.0/16" "100.64.0.0/10" "169.254.0.0/16" "127.0.0.0/8" -}}
{{- $v6 := list "fc00::/7" "fe80::/10" "::1/128" "::ffff:0:0/96" -}}
{{- range $key := keys .Values.networkPolicy.clusterCIDRs | sortAlpha -}}
{{- $cidr := index $.Values.networkPolicy.clusterCIDRs $key -}}
{{- if contains ":" $cidr }}{{ $v6 = append $v6 $cidr }}{{ else }}{{ $v4 = append $v4 $cidr }}{{ end -}}
{{- end -}}
{{- toYaml (list (dict "ipBlock" (dict "cidr" "0.0.0.0/0" "except" (uniq $v4))) (dict "ipBlock" (dict "cidr" "::/0" "except" (uniq $v6)))) -}}
{{- end }}
