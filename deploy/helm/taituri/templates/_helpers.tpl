{{- define "taituri.fullname" -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "taituri.labels" -}}
app.kubernetes.io/part-of: taituri
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "taituri.selector" -}}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/name: {{ .name }}
{{- end -}}

{{/*
Outside environment "local" every service refuses to start on a development default
(docs/security.md). The chart refuses to render those its values show, all at once and in the
services' own words, each with the value that sets it: an install fails here rather than in a
crash-looping pod.
*/}}
{{- define "taituri.refuseDevelopmentDefaults" -}}
{{- $env := .Values.environment -}}
{{- if ne $env "local" -}}
{{- $in := printf " (DEPLOYMENT_ENVIRONMENT=%s)" $env -}}
{{- $c := .Values.components -}}
{{- $problems := list -}}
{{- if and $c.payment.enabled (eq .Values.payment.provider "local") -}}
{{- $problems = append $problems (printf "PAYMENT_PROVIDER: the local provider, whose checkout page charges nothing; set PAYMENT_PROVIDER=stripe%s [payment.provider]" $in) -}}
{{- end -}}
{{- if and $c.generation.enabled (eq .Values.generation.imageProvider "local") -}}
{{- $problems = append $problems (printf "IMAGE_PROVIDER: the local provider, whose designs are placeholders; set IMAGE_PROVIDER=openai%s [generation.imageProvider]" $in) -}}
{{- end -}}
{{- /* localhost, *.localhost, 127.0.0.0/8, 0.0.0.0, [::1], [::]: only a development issuer runs there. */ -}}
{{- $loopback := `^[A-Za-z][A-Za-z0-9+.-]*://([^/@]*@)?(?i:localhost|[^/?#:@]*\.localhost|127\.[0-9]+\.[0-9]+\.[0-9]+|0\.0\.0\.0|\[::1?\])\.?(:[0-9]*)?([/?#].*)?$` -}}
{{- range $name := list "generation" "limiter" "payment" -}}
{{- if and (index $c $name).enabled (regexMatch $loopback (index $.Values $name).oidcIssuerUrl) -}}
{{- $problems = append $problems (printf "OIDC_ISSUER_URL: a loopback issuer (a development one on this machine); set the issuer of your deployment's tokens (in Kubernetes, the API server's service-account issuer)%s [%s.oidcIssuerUrl]" $in $name) -}}
{{- end -}}
{{- end -}}
{{- if $problems -}}
{{- fail (printf "Invalid configuration:\n  %s" (join "\n  " $problems)) -}}
{{- end -}}
{{- end -}}
{{- end -}}
