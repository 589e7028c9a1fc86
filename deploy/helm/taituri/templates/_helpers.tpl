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
The components that use Kafka (KAFKA_SERVICES of packages/kafka/src/access.ts: all but the
limiter) and the one that uses Redis (the limiter): each pod gets the addresses, credentials and
tokens of its own servers only. "true" or "false" for a component's name.
*/}}
{{- define "taituri.usesKafka" -}}
{{- has . (list "ingress" "conversation" "generation" "payment") -}}
{{- end -}}
{{- define "taituri.usesRedis" -}}
{{- eq . "limiter" -}}
{{- end -}}

{{/*
Values the chart refuses to render, all at once, each followed by the value that sets it: an
install fails here rather than in a crash-looping pod.

Outside environment "local" every service refuses to start on a development default
(docs/security.md). The chart refuses those its values show, in the services' own words; and Kafka
without a login (kafka.sasl none), which no service can see for itself: the paid requests would be
writable by anyone who reaches the brokers.

In any environment: Kafka and Redis settings that do not fit together, in the words of the
services' own check (packages/config/src/connections.ts); a generation grace period that would
kill a paid image call mid-way; and the WhatsApp simulator without the ingress it would play Meta
towards.
*/}}
{{- define "taituri.refuseInvalidValues" -}}
{{- $env := .Values.environment -}}
{{- $c := .Values.components -}}
{{- $problems := list -}}
{{- $kafkaEnabled := false -}}
{{- range $name, $component := $c -}}
{{- if and $component.enabled (eq (include "taituri.usesKafka" $name) "true") -}}
{{- $kafkaEnabled = true -}}
{{- end -}}
{{- end -}}
{{- $kafka := .Values.kafka -}}
{{- $sasl := toString $kafka.sasl -}}
{{- $redis := .Values.redis -}}
{{- if ne $env "local" -}}
{{- $in := printf " (DEPLOYMENT_ENVIRONMENT=%s)" $env -}}
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
{{- if $kafkaEnabled -}}
{{- if and $kafka.tls.enabled (eq (toString $kafka.tls.rejectUnauthorized) "false") -}}
{{- $problems = append $problems (printf "KAFKA_SSL_REJECT_UNAUTHORIZED: certificate checks off; set KAFKA_SSL_CA_FILE to the CA of the brokers' certificates%s [kafka.tls.rejectUnauthorized]" $in) -}}
{{- end -}}
{{- if and (eq $sasl "none") (ne (toString $kafka.allowUnauthenticated) "true") -}}
{{- $problems = append $problems (printf "KAFKA_SASL_MECHANISM unset (kafka.sasl none): no service logs in, so no ACL can tell them apart and anyone who reaches the brokers can write the paid requests (generation and payment requests, work the shop pays for); set kafka.sasl oauthbearer (each pod's service-account token), scram-sha-256, scram-sha-512 or plain, or kafka.allowUnauthenticated true if nothing but these pods can reach the brokers%s [kafka.sasl]" $in) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if $kafkaEnabled -}}
{{- $mechanisms := list "oauthbearer" "scram-sha-256" "scram-sha-512" "plain" "none" -}}
{{- if not (has $sasl $mechanisms) -}}
{{- $problems = append $problems (printf "KAFKA_SASL_MECHANISM: %s is none of %s [kafka.sasl]" $sasl (join ", " $mechanisms)) -}}
{{- else if and (ne $sasl "oauthbearer") (ne $sasl "none") -}}
{{- range $name, $component := $c -}}
{{- if and $component.enabled (eq (include "taituri.usesKafka" $name) "true") (not (index ($kafka.usernames | default dict) $name)) -}}
{{- $problems = append $problems (printf "KAFKA_SASL_USERNAME is required by KAFKA_SASL_MECHANISM=%s [kafka.usernames.%s]" $sasl $name) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if and $kafka.tls.caSecret (not $kafka.tls.enabled) -}}
{{- $problems = append $problems "KAFKA_SSL_CA_FILE is set but KAFKA_SSL is not true [kafka.tls.caSecret]" -}}
{{- end -}}
{{- end -}}
{{- if $c.limiter.enabled -}}
{{- if and $redis.username (not $redis.passwordSecretKey) -}}
{{- $problems = append $problems "REDIS_PASSWORD or REDIS_PASSWORD_FILE is required by REDIS_USERNAME [redis.passwordSecretKey]" -}}
{{- end -}}
{{- if and $redis.tls.caSecret (not $redis.tls.enabled) (not (hasPrefix "rediss:" $redis.url)) -}}
{{- $problems = append $problems "REDIS_TLS_CA_FILE is set but neither REDIS_TLS nor a rediss:// REDIS_URL asks for TLS [redis.tls.caSecret]" -}}
{{- end -}}
{{- end -}}
{{- range $name, $component := $c -}}
{{- if and $component.enabled (lt (int $component.terminationGracePeriodSeconds) 1) -}}
{{- $problems = append $problems (printf "terminationGracePeriodSeconds: %v is not a positive number of seconds [components.%s.terminationGracePeriodSeconds]" $component.terminationGracePeriodSeconds $name) -}}
{{- end -}}
{{- if and $component.enabled (hasKey $component "opsPort") (eq (int $component.opsPort) (int $component.httpPort)) -}}
{{- $problems = append $problems (printf "%s: must differ from %s (%v): the ops endpoints have a listener of their own [components.%s.opsPort]" $component.opsPortEnv $component.portEnv $component.httpPort $name) -}}
{{- end -}}
{{- end -}}
{{- if $c.generation.enabled -}}
{{- $drainMs := int (.Values.generation.drainMs | default .Values.generation.leaseMs) -}}
{{- if le (mul (int $c.generation.terminationGracePeriodSeconds) 1000) (add $drainMs 10000) -}}
{{- $problems = append $problems (printf "terminationGracePeriodSeconds: %d s is not more than GENERATION_DRAIN_MS (%d ms; generation.leaseMs when drainMs is empty) + 10 s to leave the consumer group: a rollout would kill a paid image call mid-way and its take-over pay again; raise it, or lower generation.drainMs to have calls cancelled and handed back [components.generation.terminationGracePeriodSeconds]" (int $c.generation.terminationGracePeriodSeconds) $drainMs) -}}
{{- end -}}
{{- end -}}
{{- if and .Values.simulator.enabled (not $c.ingress.enabled) -}}
{{- $problems = append $problems "SIMULATOR_WEBHOOK_URL: no ingress in this release for the WhatsApp simulator to send its webhooks to; enable components.ingress, or leave the simulator off [simulator.enabled]" -}}
{{- end -}}
{{- if $problems -}}
{{- fail (printf "Invalid configuration:\n  %s" (join "\n  " $problems)) -}}
{{- end -}}
{{- end -}}
