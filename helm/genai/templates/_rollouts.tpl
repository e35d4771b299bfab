{{/*
Canary releases with Argo Rollouts. A component named in rollouts.services is a Rollout (see
genai.workloadRef); each step sets a share of the pods on the new version, then runs the
AnalysisTemplates of its checks against that version's own series: every query selects the
canary's pods by their pod template hash (the podTargetLabel rollouts_pod_template_hash).

Every query returns one number, or nothing while the canary has served fewer than minRequests
requests in the window; the conditions then are both false, so the measurement is Inconclusive,
never a pass or a failure on too little traffic. A NaN also makes both conditions false.
*/}}

{{/* The checks that apply to a component, in order: (dict "root" $ "name" "gateway"). */}}
{{- define "genai.canaryChecks" -}}
{{- $enabled := .root.Values.rollouts.analysis.checks -}}
{{- $applicable := list "errors" "latency" -}}
{{- if eq .name "gateway" }}{{ $applicable = concat $applicable (list "timeToFirstToken" "answersWithoutSources") }}{{ end -}}
{{- $checks := list -}}
{{- range $check := $applicable }}{{ if index $enabled $check }}{{ $checks = append $checks $check }}{{ end }}{{ end -}}
{{- toYaml $checks -}}
{{- end }}

{{/* An AnalysisTemplate's name: (dict "root" $ "name" "gateway" "check" "errors"). */}}
{{- define "genai.analysisTemplateName" -}}
{{- printf "%s-%s" (include "genai.componentName" .) (.check | kebabcase) -}}
{{- end }}

{{/* The Rollout's canary strategy: a setWeight and an analysis step per weight. */}}
{{- define "genai.canaryStrategy" -}}
{{- $ctx := . -}}
{{- $checks := include "genai.canaryChecks" . | fromYamlArray -}}
canary:
  maxSurge: 25%
  maxUnavailable: 0
  steps:
    {{- range $weight := splitList "," .root.Values.rollouts.weights }}
    - setWeight: {{ int $weight }}
    {{- if $checks }}
    - analysis:
        templates:
          {{- range $check := $checks }}
          - templateName: {{ include "genai.analysisTemplateName" (merge (dict "check" $check) $ctx) }}
          {{- end }}
        args:
          - name: canary-hash
            valueFrom:
              podTemplateHashValue: Latest
    {{- end }}
    {{- end }}
{{- end }}

{{/* The label matchers of the canary's series of a component. */}}
{{- define "genai.canaryMatchers" -}}
namespace="{{ .root.Release.Namespace }}",rollouts_pod_template_hash="{{ "{{args.canary-hash}}" }}"
{{- end }}

{{/*
The measured value and the traffic it needs, per check: (dict "root" "name" "check"), as YAML
{query, conditionOp, threshold}. query already carries the minimum-traffic gate.
*/}}
{{- define "genai.canaryQuery" -}}
{{- $a := .root.Values.rollouts.analysis -}}
{{- $m := include "genai.canaryMatchers" . -}}
{{- $w := $a.window -}}
{{- $grpc := printf "%s_grpc_request_duration_seconds" .name -}}
{{- $http := "gateway_http_request_duration_seconds" -}}
{{- $api := printf "%s,route=~\"/v1/.+\"" $m -}}
{{- $value := "" -}}
{{- $traffic := "" -}}
{{- $threshold := 0.0 -}}
{{- if eq .check "errors" -}}
{{- if eq .name "gateway" -}}
{{- $value = printf "sum(rate(%s_count{%s,status_class=\"5xx\"}[%s]))\n/\nsum(rate(%s_count{%s}[%s]))" $http $api $w $http $api $w -}}
{{- $traffic = printf "%s_count{%s}" $http $api -}}
{{- else -}}
{{- $value = printf "sum(rate(%s_count{%s,code=~\"%s\"}[%s]))\n/\nsum(rate(%s_count{%s}[%s]))" $grpc $m (include "genai.grpcServerErrors" .) $w $grpc $m $w -}}
{{- $traffic = printf "%s_count{%s}" $grpc $m -}}
{{- end -}}
{{- $threshold = $a.maxErrorRatio -}}
{{- else if eq .check "latency" -}}
{{- if eq .name "gateway" -}}
{{- $value = include "genai.p95FailuresSlowest" (dict "good" (printf "%s_bucket{%s,status_class!=\"5xx\"}" $http $api) "bad" (printf "sum by (le) (rate(%s_bucket{%s,status_class=\"5xx\",le=\"+Inf\"}[%s]))" $http $api $w) "window" $w) -}}
{{- $traffic = printf "%s_count{%s}" $http $api -}}
{{- else -}}
{{- $value = include "genai.p95FailuresSlowest" (dict "good" (printf "%s_bucket{%s,code!~\"%s\"}" $grpc $m (include "genai.grpcServerErrors" .)) "bad" (printf "sum by (le) (rate(%s_bucket{%s,code=~\"%s\",le=\"+Inf\"}[%s]))" $grpc $m (include "genai.grpcServerErrors" .) $w) "window" $w) -}}
{{- $traffic = printf "%s_count{%s}" $grpc $m -}}
{{- end -}}
{{- $threshold = $a.maxP95LatencySeconds -}}
{{- else if eq .check "timeToFirstToken" -}}
{{- $failed := printf "label_replace(sum(rate(gateway_llm_requests_total{%s,stream=\"true\",outcome=~\"%s\"}[%s])), \"le\", \"+Inf\", \"\", \"\")" $m (include "genai.llmFailures" .) $w -}}
{{- $value = include "genai.p95FailuresSlowest" (dict "good" (printf "gateway_llm_time_to_first_token_seconds_bucket{%s}" $m) "bad" $failed "window" $w) -}}
{{- $traffic = printf "gateway_llm_requests_total{%s,stream=\"true\"}" $m -}}
{{- $threshold = $a.maxP95TimeToFirstTokenSeconds -}}
{{- else if eq .check "answersWithoutSources" -}}
{{- $chats := printf "gateway_chat_requests_total{%s,outcome!~\"client_error|rejected|cancelled\"}" $m -}}
{{- $answered := printf "sum(rate(gateway_chat_answer_sources_count{%s}[%s]))" $m $w -}}
{{- $unsourced := printf "sum(rate(gateway_chat_answers_without_sources_total{%s}[%s]))" $m $w -}}
{{- $value = printf "1 - (%s - %s)\n  / sum(rate(%s[%s]))" $answered $unsourced $chats $w -}}
{{- $traffic = $chats -}}
{{- $threshold = $a.maxShareWithoutSources -}}
{{- end -}}
{{- $query := printf "(\n%s\n)\nand on ()\n(sum(increase(%s[%s])) >= %d)" ($value | indent 2) $traffic $w (int $a.minRequests) -}}
{{- toYaml (dict "query" $query "threshold" $threshold) -}}
{{- end }}

{{/*
p95 of a histogram in which failures count as slower than every bucket: the failures' rate is
added to the +Inf bucket only. (dict "good" <bucket selector> "bad" <one +Inf series> "window").
*/}}
{{- define "genai.p95FailuresSlowest" -}}
{{- $good := printf "sum by (le) (rate(%s[%s]))" .good .window -}}
histogram_quantile(0.95,
  ({{ $good }} + on (le) {{ .bad }})
  or {{ $good }}
)
{{- end }}

{{/* gRPC codes that mean the server failed (client errors and overload are not the version's fault). */}}
{{- define "genai.grpcServerErrors" -}}
INTERNAL|UNKNOWN|UNAVAILABLE|DEADLINE_EXCEEDED|DATA_LOSS|UNIMPLEMENTED
{{- end }}

{{/* Outcomes of gateway_llm_requests_total that are the LLM failing (not the client, not a cancel). */}}
{{- define "genai.llmFailures" -}}
failed|timeout|unavailable|rate_limited
{{- end }}
