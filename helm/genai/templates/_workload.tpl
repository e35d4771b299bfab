{{/*
One Deployment and its ServiceAccount. Arguments (a dict):
  root, name, values   the top context, the component, its values block
  env                  the container's env (YAML list, from genai.env)
  ports                container ports (list of dicts)
  probes               readiness/liveness/startup probes (YAML)
  volumes, mounts      extra volumes and mounts (lists of dicts); /tmp is always a writable volume
  args, command        optional container args/command (lists)
  runAsUser            optional: the pod's user, for upstream images with a user of their own
  oneAtATime           true: never two pods at once (GPU workloads: no spare GPU for a surge pod;
                       a ReadWriteOnce volume)
  progressDeadlineSeconds  optional: how long a rollout may take (large models load slowly)
*/}}
{{- define "genai.deployment" -}}
{{- $scaling := include "genai.scaling" . -}}
{{- $workload := include "genai.workloadRef" . | fromYaml -}}
apiVersion: {{ $workload.apiVersion }}
kind: {{ $workload.kind }}
metadata:
  {{- include "genai.metadata" . | nindent 2 }}
spec:
  {{- if eq $scaling "fixed" }}
  replicas: {{ int .values.replicas }}
  {{- end }}
  revisionHistoryLimit: 5
  {{- with .progressDeadlineSeconds }}
  progressDeadlineSeconds: {{ . }}
  {{- end }}
  strategy:
    {{- if eq $workload.kind "Rollout" }}
    {{- include "genai.canaryStrategy" . | nindent 4 }}
    {{- else }}
    type: RollingUpdate
    rollingUpdate:
      {{- if .oneAtATime }}
      maxSurge: 0
      maxUnavailable: 1
      {{- else }}
      maxSurge: 25%
      maxUnavailable: 0
      {{- end }}
    {{- end }}
  selector:
    matchLabels:
      {{- include "genai.selectorLabels" . | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "genai.podLabels" . | nindent 8 }}
    spec:
      serviceAccountName: {{ include "genai.componentName" . }}
      automountServiceAccountToken: false
      enableServiceLinks: false
      terminationGracePeriodSeconds: {{ include "genai.terminationGrace" . }}
      securityContext:
        {{- include "genai.podSecurityContext" . | nindent 8 }}
      {{- with include "genai.scheduling" . | trim }}{{ . | nindent 6 }}{{ end }}
      containers:
        - name: {{ .name }}
          image: {{ include "genai.image" . | quote }}
          imagePullPolicy: {{ .root.Values.imagePullPolicy }}
          {{- with .command }}
          command:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          {{- with .args }}
          args:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          securityContext:
            {{- toYaml .root.Values.containerSecurityContext | nindent 12 }}
          ports:
            {{- toYaml .ports | nindent 12 }}
          env:
            {{- .env | nindent 12 }}
          {{- .probes | nindent 10 }}
          lifecycle:
            preStop:
              sleep:
                seconds: {{ int .root.Values.preStopSeconds }}
          resources:
            {{- toYaml .values.resources | nindent 12 }}
          volumeMounts:
            - {name: tmp, mountPath: /tmp}
            {{- with .mounts }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
      volumes:
        - name: tmp
          emptyDir: {}
        {{- with .volumes }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
---
{{ include "genai.serviceAccount" . }}
{{- end }}

{{/* A Service: (dict "root" "name" "ports" (list of dicts) "headless" bool "suffix" optional). */}}
{{- define "genai.service" -}}
apiVersion: v1
kind: Service
metadata:
  name: {{ include "genai.componentName" . }}{{ with .suffix }}-{{ . }}{{ end }}
  namespace: {{ .root.Release.Namespace }}
  labels:
    {{- include "genai.labels" . | nindent 4 }}
spec:
  {{- if .headless }}
  # Headless: the name resolves to every ready pod, so clients balance over the replicas.
  clusterIP: None
  {{- end }}
  {{- if .publishNotReadyAddresses }}
  publishNotReadyAddresses: true
  {{- end }}
  selector:
    {{- include "genai.selectorLabels" . | nindent 4 }}
  ports:
    {{- toYaml .ports | nindent 4 }}
{{- end }}

{{/* Probes of a gRPC service (grpc.health.v1). */}}
{{- define "genai.grpcProbes" -}}
startupProbe:
  grpc: {port: {{ .port }}}
  periodSeconds: 10
  failureThreshold: {{ div (int (.startupSeconds | default 600)) 10 }}
readinessProbe:
  grpc: {port: {{ .port }}}
  periodSeconds: 5
livenessProbe:
  grpc: {port: {{ .port }}}
  periodSeconds: 10
  timeoutSeconds: 5
  failureThreshold: 6
{{- end }}

{{/*
Probes of an HTTP service: /healthz (alive), /readyz (dependencies reachable). .startupPath
/readyz makes loading (a model) count against .startupSeconds (default 600).
*/}}
{{- define "genai.httpProbes" -}}
startupProbe:
  httpGet: {path: {{ .startupPath | default "/healthz" }}, port: {{ .port }}}
  periodSeconds: 10
  failureThreshold: {{ div (int (.startupSeconds | default 600)) 10 }}
readinessProbe:
  httpGet: {path: /readyz, port: {{ .port }}}
  periodSeconds: 5
  timeoutSeconds: 3
livenessProbe:
  httpGet: {path: /healthz, port: {{ .port }}}
  periodSeconds: 10
  timeoutSeconds: 5
  failureThreshold: 6
{{- end }}

{{/* vLLM's probes: /health; loading (and downloading) the model counts against startupSeconds. */}}
{{- define "genai.vllmProbes" -}}
startupProbe:
  httpGet: {path: /health, port: http}
  periodSeconds: 10
  failureThreshold: {{ div (int .startupSeconds) 10 }}
readinessProbe:
  httpGet: {path: /health, port: http}
  periodSeconds: 5
  timeoutSeconds: 3
livenessProbe:
  httpGet: {path: /health, port: http}
  periodSeconds: 10
  timeoutSeconds: 5
  failureThreshold: 6
{{- end }}

{{/* An autoscaling/v2 HPA: (dict "root" "name" "values" "metrics" (list ...)). */}}
{{- define "genai.hpa" -}}
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  {{- include "genai.metadata" . | nindent 2 }}
spec:
  scaleTargetRef:
    {{- include "genai.workloadRef" . | nindent 4 }}
    name: {{ include "genai.componentName" . }}
  minReplicas: {{ int .values.autoscaling.minReplicas | max 1 }}
  maxReplicas: {{ int .values.autoscaling.maxReplicas }}
  metrics:
    {{- toYaml .metrics | nindent 4 }}
  behavior:
    {{- include "genai.scaleBehavior" . | nindent 4 }}
{{- end }}

{{/* Scale-down stabilisation, one pod at a time for GPU workloads. */}}
{{- define "genai.scaleBehavior" -}}
scaleDown:
  stabilizationWindowSeconds: {{ int .values.autoscaling.scaleDownStabilizationSeconds }}
  policies:
    {{- if eq (include "genai.usesGpu" .) "true" }}
    - {type: Pods, value: 1, periodSeconds: 120}
    {{- else }}
    - {type: Percent, value: 50, periodSeconds: 60}
    {{- end }}
{{- end }}

{{/* The per-replica target of a queue/LLM signal: messages for ingest and imagegen, waiting requests for vLLM. */}}
{{- define "genai.scalingTarget" -}}
{{- if or (eq .name "ingest") (eq .name "imagegen") -}}{{ int .values.autoscaling.messagesPerReplica }}
{{- else -}}{{ int .values.autoscaling.waitingRequestsPerReplica }}
{{- end -}}
{{- end }}

{{/* The queue a worker consumes (its settings' default unless its env names another). */}}
{{- define "genai.workerQueue" -}}
{{- if eq .name "ingest" -}}{{ .values.env.INGEST_QUEUE | default "ingest.document-uploaded" }}
{{- else -}}{{ .values.env.IMAGEGEN_QUEUE | default "imagegen.image-jobs" }}
{{- end -}}
{{- end }}

{{/* Labels that pick a component's signal out of an External metric (prometheus-adapter). */}}
{{- define "genai.scalingSignalLabels" -}}
{{- if eq .name "vllm" -}}
model_name: {{ .root.Values.vllm.servedModelName | quote }}
{{- else -}}
queue: {{ include "genai.workerQueue" . | quote }}
{{- end -}}
{{- end }}

{{/* A KEDA ScaledObject (and the TriggerAuthentication of a RabbitMQ trigger). */}}
{{- define "genai.scaledObject" -}}
{{- $rabbit := include "genai.rabbitmqSecret" .root | fromYaml -}}
{{- $name := include "genai.componentName" . -}}
{{- if ne .name "vllm" }}
apiVersion: keda.sh/v1alpha1
kind: TriggerAuthentication
metadata:
  {{- include "genai.metadata" . | nindent 2 }}
spec:
  secretTargetRef:
    - {parameter: host, name: {{ $rabbit.secret }}, key: {{ $rabbit.managementKey }}}
---
{{- end }}
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata:
  {{- include "genai.metadata" . | nindent 2 }}
spec:
  scaleTargetRef:
    name: {{ $name }}
  minReplicaCount: {{ int .values.autoscaling.minReplicas }}
  maxReplicaCount: {{ int .values.autoscaling.maxReplicas }}
  pollingInterval: 15
  cooldownPeriod: {{ int .values.autoscaling.scaleDownStabilizationSeconds }}
  advanced:
    horizontalPodAutoscalerConfig:
      behavior:
        {{- include "genai.scaleBehavior" . | nindent 8 }}
  triggers:
    {{- if eq .name "vllm" }}
    # Requests vLLM has queued: more replicas when each has more than the target waiting.
    - type: prometheus
      metadata:
        serverAddress: {{ .root.Values.monitoring.prometheusUrl }}
        query: {{ printf "sum(vllm:num_requests_waiting{namespace=%q,model_name=%q})" .root.Release.Namespace .root.Values.vllm.servedModelName | quote }}
        threshold: {{ include "genai.scalingTarget" . | quote }}
    {{- else }}
    # Messages ready + unacked (protocol http reads the management API), per replica.
    - type: rabbitmq
      metadata:
        protocol: http
        mode: QueueLength
        value: {{ include "genai.scalingTarget" . | quote }}
        queueName: {{ include "genai.workerQueue" . | quote }}
        vhostName: {{ $rabbit.vhost | quote }}
      authenticationRef:
        name: {{ $name }}
    {{- end }}
{{- end }}
