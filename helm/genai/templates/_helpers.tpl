{{- define "genai.labels" -}}
app.kubernetes.io/name: {{ .name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/part-of: genai
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version }}
{{- end }}

{{- define "genai.selector" -}}
app.kubernetes.io/name: {{ .name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
{{- end }}

{{/* Environment every service shares. */}}
{{- define "genai.commonEnv" -}}
- name: AMQP_URL
  valueFrom:
    secretKeyRef: {name: {{ .root.Values.config.amqpUrlSecret }}, key: AMQP_URL}
- name: BLOB_STORE_URL
  value: {{ .root.Values.config.blobStoreUrl | quote }}
- name: RETRIEVER_ADDR
  value: {{ printf "%s-retriever:%v" .root.Release.Name .root.Values.retriever.port | quote }}
- name: SCRAPER_ADDR
  value: {{ printf "%s-scraper:%v" .root.Release.Name .root.Values.scraper.port | quote }}
- name: HF_HUB_OFFLINE
  value: "1"
{{- end }}

{{/*
One workload: .name (service), .root (top context), .values (its values block),
.env (extra env list, YAML), .probes (probe YAML), .ports (container ports YAML), .blobs (mount the blob volume),
.models (a PVC name holding model weights, mounted read-only at /models).
*/}}
{{- define "genai.deployment" -}}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ printf "%s-%s" .root.Release.Name .name }}
  labels:
    {{- include "genai.labels" . | nindent 4 }}
spec:
  replicas: {{ .values.replicas }}
  selector:
    matchLabels:
      {{- include "genai.selector" . | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "genai.labels" . | nindent 8 }}
    spec:
      serviceAccountName: {{ printf "%s-%s" .root.Release.Name .name }}
      automountServiceAccountToken: false
      terminationGracePeriodSeconds: 30
      securityContext:
        {{- toYaml .root.Values.podSecurityContext | nindent 8 }}
      {{- with .values.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with .values.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      containers:
        - name: {{ .name }}
          image: {{ printf "%s/%s:%s" .root.Values.image.registry .name .root.Values.image.tag | quote }}
          imagePullPolicy: {{ .root.Values.image.pullPolicy }}
          securityContext:
            {{- toYaml .root.Values.securityContext | nindent 12 }}
          ports:
            {{- .ports | nindent 12 }}
          env:
            {{- include "genai.commonEnv" . | nindent 12 }}
            {{- with .env }}
            {{- . | nindent 12 }}
            {{- end }}
          {{- .probes | nindent 10 }}
          resources:
            {{- toYaml .values.resources | nindent 12 }}
          volumeMounts:
            - {name: tmp, mountPath: /tmp}
            {{- if .blobs }}
            - {name: blobs, mountPath: /data/blobs}
            {{- end }}
            {{- if .models }}
            - {name: models, mountPath: /models, readOnly: true}
            {{- end }}
      volumes:
        - name: tmp
          emptyDir: {}
        {{- if .blobs }}
        - name: blobs
          persistentVolumeClaim:
            claimName: {{ .root.Values.config.blobClaim }}
        {{- end }}
        {{- if .models }}
        - name: models
          persistentVolumeClaim:
            claimName: {{ .models }}
            readOnly: true
        {{- end }}
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: {{ printf "%s-%s" .root.Release.Name .name }}
  labels:
    {{- include "genai.labels" . | nindent 4 }}
automountServiceAccountToken: false
{{- end }}

{{- define "genai.service" -}}
apiVersion: v1
kind: Service
metadata:
  name: {{ printf "%s-%s" .root.Release.Name .name }}
  labels:
    {{- include "genai.labels" . | nindent 4 }}
spec:
  selector:
    {{- include "genai.selector" . | nindent 4 }}
  ports:
    {{- .ports | nindent 4 }}
{{- end }}

{{- define "genai.grpcProbes" -}}
readinessProbe:
  grpc: {port: {{ .port }}}
  periodSeconds: 5
livenessProbe:
  grpc: {port: {{ .port }}}
  periodSeconds: 10
  failureThreshold: 6
startupProbe:
  grpc: {port: {{ .port }}}
  periodSeconds: 5
  failureThreshold: 60
{{- end }}

{{- define "genai.httpProbes" -}}
readinessProbe:
  httpGet: {path: /readyz, port: {{ .port }}}
  periodSeconds: 5
livenessProbe:
  httpGet: {path: /healthz, port: {{ .port }}}
  periodSeconds: 10
  failureThreshold: 6
startupProbe:
  httpGet: {path: /readyz, port: {{ .port }}}
  periodSeconds: 5
  failureThreshold: 120
{{- end }}
