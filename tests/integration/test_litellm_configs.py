"""LiteLLM proxy configs load unchanged. Each test writes a config in the shape of one of
LiteLLM's own (litellm/proxy/example_config_yaml, proxy_server_config.yaml, the proxy docs'
examples), with our own names, and says which LiteLLM behaviour it covers: what `check`
prints, and what `serve` answers (/health, /v1/models, a chat request)."""

from harness import MASTER_KEY, MOCK_KEY, chat, chat_body, check, contains, eq, http

# LiteLLM reads provider keys from the environment when an entry has none; a test must not
# depend on what the machine running it exports.
NO_PROVIDER_ENV = {k: None for k in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "AZURE_API_KEY",
                                     "AZURE_API_BASE", "GEMINI_API_KEY", "OLLAMA_API_BASE",
                                     "MISTRAL_API_KEY", "OPENROUTER_API_KEY")}


def check_config(fx, text, name="litellm.yaml", env=None):
    path = fx.write(name, text)
    return fx.cli(["check", "-c", path], env=dict(NO_PROVIDER_ENV, **(env or {})))


def diagnostics(fx, r):
    """check's stderr as lines, with the test's folder taken out of the file names."""
    return [ln.replace(fx.dir + "/", "") for ln in r.err.splitlines()]


def checked(fx, text, code, lines, name="litellm.yaml", env=None):
    """`slogate check` of `text`: its exit code, and its diagnostics exactly `lines`."""
    r = check_config(fx, text, name, env)
    eq(r.code, code, "check (%s)" % r)
    eq(diagnostics(fx, r), lines, "check's diagnostics")
    return r


def root(m):
    """The mock's server root (its url ends in /v1, as an OpenAI api_base does)."""
    return m.url[:-len("/v1")] if m.url.endswith("/v1") else m.url


def models(gw):
    r = http(gw.port, "GET", "/v1/models")
    eq(r.status, 200, "GET /v1/models (%s)" % r.text)
    return [m["id"] for m in r.json()["data"]]


def test_litellm_settings_fallbacks_fail_over(fx):
    # LiteLLM's reliability docs ("Fallbacks + Retries + Timeouts + Cooldowns") put the
    # router's fallbacks, num_retries, request_timeout and allowed_fails under
    # litellm_settings; LiteLLM's Router takes them from there when router_settings has none
    # (`fallbacks or litellm.fallbacks`). Ignored, a LiteLLM config would lose its failover.
    down = fx.mock(name="down", status=500)
    up = fx.mock(name="up")
    text = ("model_list:\n"
            "  - model_name: team-chat\n"
            "    litellm_params:\n"
            "      model: openai/gpt-4o-mini\n"
            "      api_base: %s\n"
            "      api_key: %s\n"
            "    model_info: { id: chat-main }\n"
            "  - model_name: team-chat-backup\n"
            "    litellm_params:\n"
            "      model: openai/gpt-4o-mini\n"
            "      api_base: %s\n"
            "      api_key: %s\n"
            "    model_info: { id: chat-backup }\n"
            "litellm_settings:\n"
            "  num_retries: 0\n"
            "  request_timeout: 10\n"
            "  allowed_fails: 3\n"
            "  fallbacks: [{\"team-chat\": [\"team-chat-backup\"]}]\n"
            "general_settings:\n"
            "  master_key: %s\n" % (down.url, MOCK_KEY, up.url, MOCK_KEY, MASTER_KEY))
    checked(fx, text, 0, [])  # litellm_settings' router keys are read, not warned about
    gw = fx.gateway(text)
    resp = chat(gw.port, chat_body(model="team-chat"))
    eq(resp.status, 200, "team-chat falls back (%s)" % resp.text)
    eq(resp.header("x-slogate-deployment"), "chat-backup", "answered by the fallback group")
    eq(resp.header("x-slogate-failover-hops"), "1", "one hop to the fallback alias")
    eq(down.stats()["requests"], 1, "num_retries: 0 from litellm_settings: one try on team-chat")


def test_deployments_slogate_cannot_route_are_left_out(fx):
    # LiteLLM's docs quick start and proxy_server_config.yaml mix providers: Bedrock,
    # SageMaker, text-completion models, Vertex AI behind a wildcard route. LiteLLM's proxy
    # drops a deployment it cannot set up and serves the rest; slogate loads such a config,
    # says which entries it does not route and why, and serves the others. (Wildcard routes it
    # can fill are served: test_wildcard.py.)
    m = fx.mock(key=None)
    text = ("model_list:\n"
            "  - model_name: bedrock-claude\n"
            "    litellm_params:\n"
            "      model: bedrock/anthropic.claude-instant-v1\n"
            "      aws_region_name: us-east-1\n"
            "      aws_secret_access_key: os.environ/NEVER_EXPORTED_SECRET\n"
            "  - model_name: sagemaker-llama\n"
            "    litellm_params:\n"
            "      model: sagemaker/llama-2-chat-endpoint\n"
            "  - model_name: instruct\n"
            "    litellm_params:\n"
            "      model: text-completion-openai/gpt-3.5-turbo-instruct\n"
            "  - model_name: \"*\"\n"
            "    litellm_params:\n"
            "      model: vertex_ai/*\n"
            "      api_key: os.environ/NEVER_EXPORTED_KEY\n"
            "  - model_name: team\n"
            "    litellm_params:\n"
            "      model: \"openai/*\"\n"
            "  - model_name: local-llama\n"
            "    litellm_params:\n"
            "      model: ollama/llama3\n"
            "      api_base: %s\n"
            "    model_info: { id: llama-one }\n"
            "general_settings:\n"
            "  master_key: %s\n" % (root(m), MASTER_KEY))
    r = checked(fx, text, 0, [
        "litellm.yaml:4: warning: model_list[0] (bedrock-claude) is not routed: slogate has no "
        "bedrock adapter (it speaks the OpenAI and Anthropic APIs); to reach "
        "anthropic.claude-instant-v1 through an OpenAI-compatible endpoint, write model: "
        "openai/anthropic.claude-instant-v1 with that endpoint as api_base",
        "litellm.yaml:9: warning: model_list[1] (sagemaker-llama) is not routed: slogate has no "
        "sagemaker adapter (it speaks the OpenAI and Anthropic APIs); to reach "
        "llama-2-chat-endpoint through an OpenAI-compatible endpoint, write model: "
        "openai/llama-2-chat-endpoint with that endpoint as api_base",
        "litellm.yaml:12: warning: model_list[2] (instruct) is not routed: slogate has no "
        "text-completion-openai adapter (it speaks the OpenAI and Anthropic APIs); to reach "
        "gpt-3.5-turbo-instruct through an OpenAI-compatible endpoint, write model: "
        "openai/gpt-3.5-turbo-instruct with that endpoint as api_base",
        "litellm.yaml:15: warning: model_list[3] (*) is not routed: slogate has no vertex_ai "
        "adapter (it speaks the OpenAI and Anthropic APIs); to reach * through an "
        "OpenAI-compatible endpoint, write model: openai/* with that endpoint as api_base",
        "litellm.yaml:19: warning: model_list[4] (team) is not routed: litellm_params.model "
        "'openai/*' has a '*' but model_name 'team' has none to fill it (LiteLLM would send the "
        "'*' itself as the model): write model_name: \"team/*\" so that team/<model> calls "
        "<model>, or name the model (model: openai/gpt-4o)",
        "litellm.yaml:20: warning: model_list[5] (llama-one): no price known for "
        "ollama/llama3; its requests will cost 0. Set litellm_params.input_cost_per_token and "
        "output_cost_per_token",
    ])
    contains(r.out, "litellm.yaml: ok \u2014 1 deployment in 1 group, 6 warnings", "the summary")

    gw = fx.gateway(text)
    eq(http(gw.port, "GET", "/health/readiness", key=None).status, 200, "/health/readiness")
    eq(models(gw), ["local-llama"], "/v1/models lists what slogate routes")
    r = chat(gw.port, chat_body(model="bedrock-claude"))
    eq(r.status, 404, "an alias slogate does not route (%s)" % r.text)
    eq(r.error()["code"], "model_not_found", "the error code")
    eq(r.error()["message"],
       "The model `bedrock-claude` is in this gateway's config but not routed: slogate has no "
       "bedrock adapter (it speaks the OpenAI and Anthropic APIs); to reach "
       "anthropic.claude-instant-v1 through an OpenAI-compatible endpoint, write model: "
       "openai/anthropic.claude-instant-v1 with that endpoint as api_base. GET /v1/models lists "
       "the models this gateway serves.", "the client is told why, as the operator was")
    r = chat(gw.port, chat_body(model="team"))
    contains(r.error()["message"], "is in this gateway's config but not routed: "
             "litellm_params.model 'openai/*' has a '*'", "an entry's name")
    r = chat(gw.port, chat_body(model="gpt-4o"))  # what the wildcard would have taken
    eq(r.status, 404, "a model the wildcard would match (%s)" % r.text)
    contains(r.error()["message"], "is in this gateway's config but not routed: slogate has no "
             "vertex_ai adapter", "a name the left-out route matches: its reason")
    r = chat(gw.port, chat_body(model="gpt-4o/x\ny"))  # no route matches a newline
    eq(r.status, 404, "a name no route matches (%s)" % r.text)
    contains(r.error()["message"], "does not exist", "a name in no entry: the usual message")
    r = chat(gw.port, chat_body(model="local-llama"))
    eq(r.status, 200, "the Ollama deployment answers (%s)" % r.text)
    # LiteLLM's Ollama api_base is the server's root: its OpenAI-compatible API is under /v1.
    eq(m.last()["path"], "/v1/chat/completions", "the path the Ollama server was called on")
    eq(m.last()["model"], "llama3", "the model sent")


def test_a_config_with_nothing_routable_loads_and_serve_says_why(fx):
    # websearch_interception_config.yaml: one Bedrock deployment. check loads it (exit 0);
    # serve has nothing to route to and refuses to start, as it does for an empty model_list.
    text = ("model_list:\n"
            "  - model_name: claude-sonnet\n"
            "    litellm_params:\n"
            "      model: bedrock/us.anthropic.claude-3-5-sonnet-v2:0\n"
            "search_tools:\n"
            "  - search_tool_name: web\n"
            "    litellm_params: { search_provider: perplexity }\n")
    r = checked(fx, text, 0, [
        "litellm.yaml:2: warning: none of the 1 model_list entries can be routed by slogate "
        "(each says why): the gateway has nothing to route to, and serve refuses to start",
        "litellm.yaml:4: warning: model_list[0] (claude-sonnet) is not routed: slogate has no "
        "bedrock adapter (it speaks the OpenAI and Anthropic APIs); to reach "
        "us.anthropic.claude-3-5-sonnet-v2:0 through an OpenAI-compatible endpoint, write "
        "model: openai/us.anthropic.claude-3-5-sonnet-v2:0 with that endpoint as api_base",
        "litellm.yaml:5: warning: search_tools is a LiteLLM setting slogate does not support; "
        "ignored",
    ])
    r = fx.cli(["serve", "-c", fx.path("litellm.yaml"), "--port", "0"], timeout=10)
    eq(r.code, 2, "serve refuses (%s)" % r)
    contains(r.err, "has no model_list entries slogate can route (any it left out are in the "
             "warnings above)", "serve says why")


def test_azure_deployment_calls_the_v1_api(fx):
    # azure_config.yaml: azure/<deployment> with the resource's api_base and an api_version.
    # slogate speaks OpenAI's wire format, which Azure OpenAI serves at <resource>/openai/v1
    # (the deployment name as the model, the key as a Bearer token; no api-version).
    m = fx.mock(key=None)
    text = ("model_list:\n"
            "  - model_name: gpt-4-team1\n"
            "    litellm_params:\n"
            "      model: azure/chatgpt-v-2\n"
            "      api_base: %s/\n"
            "      api_version: \"2023-05-15\"\n"
            "      api_key: os.environ/AZURE_API_KEY\n"
            "      tpm: 20_000\n"
            "      timeout: 5\n"
            "      stream_timeout: 0.5\n"
            "      max_retries: 4\n"
            "    model_info: { id: team1 }\n"
            "general_settings: { master_key: %s }\n" % (root(m), MASTER_KEY))
    env = {"AZURE_API_KEY": "azure-key"}
    r = checked(fx, text, 0, [
        "litellm.yaml:2: warning: model_list[0] (team1): no price known for azure/chatgpt-v-2; "
        "its requests will cost 0. Set litellm_params.input_cost_per_token and "
        "output_cost_per_token",
        "litellm.yaml:6: warning: model_list[0].litellm_params.api_version is a LiteLLM setting "
        "slogate does not support; ignored (slogate calls Azure OpenAI's v1 API, which takes "
        "none)",
    ], env=env)
    gw = fx.gateway(text, env=env)
    deps = http(gw.port, "GET", "/admin/deployments").json()["deployments"]
    eq(deps[0]["api_base"], root(m) + "/openai/v1", "the v1 API of the resource")
    # The mock serves /v1/chat/completions only: its 404, relayed, names the path called.
    r = chat(gw.port, chat_body(model="gpt-4-team1"))
    eq(r.status, 404, "the mock has no Azure path (%s)" % r.text)
    contains(r.error()["message"], "Unknown path /openai/v1/chat/completions",
             "the gateway called <api_base>/openai/v1/chat/completions")


def test_include_merges_files_as_litellm_does(fx):
    # LiteLLM's config_management docs: `include: [model_config.yaml]` beside the main
    # config; lists (model_list) are extended, paths are relative to the main config's folder.
    m = fx.mock()
    fx.write("model_config.yaml", (
        "model_list:\n"
        "  - model_name: gpt-4o\n"
        "    litellm_params:\n"
        "      model: openai/gpt-4o\n"
        "      api_base: %s\n"
        "      api_key: %s\n"
        "    model_info: { id: included }\n" % (m.url, MOCK_KEY)))
    text = ("include:\n"
            "  - model_config.yaml\n"
            "model_list:\n"
            "  - model_name: app/chat\n"
            "    litellm_params: { model: openai/gpt-4o-mini, api_base: %s, api_key: %s }\n"
            "    model_info: { id: main }\n"
            "litellm_settings:\n"
            "  callbacks: [\"prometheus\"]\n"
            "general_settings: { master_key: %s }\n" % (m.url, MOCK_KEY, MASTER_KEY))
    r = checked(fx, text, 0, [
        "parent_config.yaml:8: warning: litellm_settings.callbacks is a LiteLLM setting slogate "
        "does not support; ignored (slogate exports OTLP spans: see telemetry.otlp_endpoint)",
    ], name="parent_config.yaml")
    contains(r.out, "ok \u2014 2 deployments in 2 groups", "both files' deployments")
    gw = fx.gateway(text, name="parent_config")
    eq(models(gw), ["app/chat", "gpt-4o"], "/v1/models lists the included model too")
    r = chat(gw.port, chat_body(model="gpt-4o"))
    eq(r.status, 200, "the included deployment answers (%s)" % r.text)
    eq(r.header("x-slogate-deployment"), "included", "answered by it")

    # A problem in an included file is named with that file and its line; a missing file
    # stops LiteLLM too.
    fx.write("model_config.yaml", "model_list:\n"
             "  - model_name: gpt-4o\n"
             "    litellm_params: { model: openai/gpt-4o, api_key: k, order: first }\n")
    checked(fx, text.replace("  - model_config.yaml\n",
                             "  - model_config.yaml\n  - extra_models.yaml\n"), 2, [
        "parent_config.yaml:3: error: include: cannot read extra_models.yaml: no such file "
        "(paths are relative to the main config's folder, as in LiteLLM, which stops on a "
        "missing file too)",
        "parent_config.yaml:9: warning: litellm_settings.callbacks is a LiteLLM setting "
        "slogate does not support; ignored (slogate exports OTLP spans: see "
        "telemetry.otlp_endpoint)",
        "model_config.yaml:3: error: model_list[0].litellm_params.order must be an integer "
        ">= 1, got \"first\"",
    ], name="parent_config.yaml")


def test_model_group_alias_is_served_and_listed(fx):
    # LiteLLM's load_balancing docs: router_settings.model_group_alias {"gpt-4": "gpt-4o"}
    # routes requests for gpt-4 to the gpt-4o group, and /v1/models lists the alias.
    m = fx.mock()
    text = ("model_list:\n"
            "  - model_name: gpt-4o\n"
            "    litellm_params: { model: openai/gpt-4o, api_base: %s, api_key: %s }\n"
            "    model_info: { id: four-o }\n"
            "router_settings:\n"
            "  routing_strategy: simple-shuffle\n"
            "  model_group_alias:\n"
            "    gpt-4: gpt-4o\n"
            "    legacy-4: { model: gpt-4o, hidden: true }\n"
            "  num_retries: 2\n"
            "  timeout: 30\n"
            "general_settings: { master_key: %s }\n" % (m.url, MOCK_KEY, MASTER_KEY))
    checked(fx, text, 0, [])
    gw = fx.gateway(text)
    eq(models(gw), ["gpt-4o", "gpt-4"], "/v1/models lists the alias, not the hidden one")
    for alias in ("legacy-4", "gpt-4"):
        r = chat(gw.port, chat_body(model=alias))
        eq(r.status, 200, "a request for %s (%s)" % (alias, r.text))
        eq(r.header("x-slogate-deployment"), "four-o", "served by the target's deployment")
    eq(m.last()["model"], "gpt-4o", "the target's model is sent")


def test_rpm_beside_litellm_params_weighs_the_pick(fx):
    # load_balancer.yaml writes tpm/rpm beside litellm_params; LiteLLM's router copies them
    # into litellm_params, and simple-shuffle picks by rpm when no weight is given. A
    # deployment with rpm 1 next to one with rpm 1,000,000 is picked about once in a million.
    a = fx.mock(name="small")
    b = fx.mock(name="large")
    text = ("litellm_settings:\n"
            "  drop_params: True\n"
            "model_list:\n"
            "  - model_name: gpt-3.5-turbo\n"
            "    litellm_params: { model: gpt-3.5-turbo, api_base: %s, api_key: %s }\n"
            "    model_info: { id: small }\n"
            "    tpm: 20_000\n"
            "    rpm: 1\n"
            "  - model_name: gpt-3.5-turbo\n"
            "    litellm_params: { model: gpt-3.5-turbo, api_base: %s, api_key: %s }\n"
            "    model_info: { id: large }\n"
            "    tpm: 20_000\n"
            "    rpm: 1_000_000\n"
            "general_settings: { master_key: %s }\n" % (a.url, MOCK_KEY, b.url, MOCK_KEY,
                                                       MASTER_KEY))
    r = checked(fx, text, 0, ["litellm.yaml:2: warning: litellm_settings.drop_params is a LiteLLM "
                        "setting slogate does not support; ignored"])
    gw = fx.gateway(text)
    picks = [chat(gw.port, chat_body(model="gpt-3.5-turbo")).header("x-slogate-deployment")
             for _ in range(20)]
    eq(picks, ["large"] * 20, "picked by rpm")


def test_fallbacks_litellm_loads_are_warnings(fx):
    # oai_misc_config.yaml's context_window_fallbacks name models the config does not have
    # ({"gpt-5-mini": ["gpt-5.5"]}); LiteLLM loads that and fails only when a request needs
    # it. A fallback to itself and an alias listed twice (LiteLLM uses the first list) load
    # too. A list that is no list of {alias: [...]} is refused by LiteLLM and slogate alike.
    m = fx.mock()
    text = ("model_list:\n"
            "  - model_name: chat\n"
            "    litellm_params: { model: openai/gpt-4o-mini, api_base: %s, api_key: %s }\n"
            "  - model_name: chat-lite\n"
            "    litellm_params: { model: openai/gpt-4o-mini, api_base: %s, api_key: %s }\n"
            "litellm_settings:\n"
            "  context_window_fallbacks: [{\"gpt-5-mini\": [\"gpt-5.5\"]}]\n"
            "router_settings:\n"
            "  fallbacks:\n"
            "    - chat: [chat, chat-lite]\n"
            "    - chat: [nowhere]\n"
            "general_settings: { master_key: %s }\n" % (m.url, MOCK_KEY, m.url, MOCK_KEY,
                                                       MASTER_KEY))
    r = checked(fx, text, 0, [
        "litellm.yaml:7: warning: litellm_settings.context_window_fallbacks[0].gpt-5-mini: "
        "'gpt-5-mini' is not a model_name in model_list: add a deployment with model_name: "
        "gpt-5-mini or remove it; this fallback is skipped",
        "litellm.yaml:10: warning: router_settings.fallbacks[0].chat[0]: 'chat' falls back to "
        "itself: skipped (list other aliases)",
        "litellm.yaml:11: warning: router_settings.fallbacks[1].chat: fallbacks for 'chat' are "
        "listed twice (first at line 10): the first list is used, as in LiteLLM; merge them "
        "into one",
    ])
    r = check_config(fx, text.replace("    - chat: [nowhere]\n", "    - chat-lite\n"))
    eq(r.code, 2, "check (%s)" % r)
    contains(r.err, "litellm.yaml:11: error: router_settings.fallbacks[1] must be a one-key "
             "mapping {alias: [fallback aliases]}, got \"chat-lite\"", "the shape is refused")


def test_yaml_as_pyyaml_reads_it(fx):
    # LiteLLM reads its config with PyYAML (YAML 1.1): anchors and merge keys for shared
    # litellm_params, block scalars, yes/on booleans, 0x and sexagesimal integers, the last of
    # duplicate keys. Two documents are refused by yaml.safe_load, and so here.
    m = fx.mock()
    text = ("x-shared: &shared\n"
            "  api_key: %s\n"
            "  api_base: >-\n"
            "    %s\n"
            "  timeout: 1:30\n"
            "model_list:\n"
            "  - model_name: chat\n"
            "    litellm_params:\n"
            "      <<: *shared\n"
            "      model: openai/gpt-4o-mini\n"
            "      rpm: 0x1f\n"
            "    model_info:\n"
            "      id: |-\n"
            "        chat-one\n"
            "router_settings:\n"
            "  enable_weighted_failover: yes\n"
            "  num_retries: 1\n"
            "  num_retries: 017\n"
            "general_settings:\n"
            "  disable_spend_logs: on\n"
            "  master_key: %s\n" % (MOCK_KEY, m.url, MASTER_KEY))
    r = checked(fx, text, 0, [
        "litellm.yaml:1: warning: unknown key 'x-shared' at the top level: not supported, "
        "ignored",
        "litellm.yaml:17: warning: duplicate key 'num_retries': this value is ignored, the one "
        "at line 18 is used (as PyYAML, and so LiteLLM, reads it); remove one of them",
    ])
    gw = fx.gateway(text)
    r = chat(gw.port, chat_body(model="chat"))
    eq(r.status, 200, "the merged litellm_params work (%s)" % r.text)
    eq(r.header("x-slogate-deployment"), "chat-one", "the block scalar id")

    r = check_config(fx, text + "---\nmodel_list: []\n")
    eq(r.code, 2, "two documents (%s)" % r)
    eq(diagnostics(fx, r)[1:], [
        "litellm.yaml:22: error: a second YAML document starts here ('---'): slogate reads one "
        "document per file; remove the separator or split the file"], "the second document")


def test_configs_pyyaml_refuses_are_refused(fx):
    # LiteLLM's own proxy_config.yaml has a key indented under a flow mapping's closing brace:
    # PyYAML stops at it ("expected <block end>"), so LiteLLM cannot run it either.
    text = ("model_list:\n"
            "  - model_name: chat\n"
            "    litellm_params: { model: openai/gpt-4o-mini, api_key: k }\n"
            "general_settings:\n"
            " master_key: sk-1234\n"
            " alert_to_webhook_url: {\n"
            "    \"llm_too_slow\": [\"https://hooks.example/a\"],\n"
            "  }\n"
            "  key_management_system: \"azure_key_vault\"\n")
    r = check_config(fx, text)
    eq(r.code, 2, "check (%s)" % r)
    eq(len(diagnostics(fx, r)), 1, "one problem (%s)" % r.err)
    check(diagnostics(fx, r)[0].startswith("litellm.yaml:9: error: YAML syntax error: "),
          "the line PyYAML stops at too (%s)" % r.err)


def test_bare_claude_model_calls_anthropic(fx):
    # LiteLLM's reliability docs write `model: claude-3-opus-20240229` with no provider: LiteLLM
    # finds the name in its Anthropic model list. Sent to OpenAI instead, the request fails and
    # the Anthropic key goes to the wrong company.
    m = fx.mock(name="anthropic")
    text = ("model_list:\n"
            "  - model_name: claude-haiku\n"
            "    litellm_params:\n"
            "      model: claude-3-5-haiku-20241022\n"
            "      api_base: http://127.0.0.1:%d\n"
            "      api_key: os.environ/ANTHROPIC_API_KEY\n"
            "    model_info: { id: haiku }\n"
            "general_settings: { master_key: %s }\n" % (m.port, MASTER_KEY))
    env = {"ANTHROPIC_API_KEY": MOCK_KEY}
    checked(fx, text, 0, [], env=env)  # no "sent to OpenAI" warning, and priced
    gw = fx.gateway(text, env=env)
    r = chat(gw.port, chat_body(model="claude-haiku"))
    eq(r.status, 200, "the bare claude model answers (%s)" % r.text)
    eq(r.header("x-slogate-provider"), "anthropic", "called as an Anthropic model")
    eq(m.last()["path"], "/v1/messages", "on Anthropic's Messages API")
    eq(m.last()["x_api_key"], MOCK_KEY, "with the key in x-api-key")
    eq(m.last()["body"]["model"], "claude-3-5-haiku-20241022", "the model as written")


def test_providers_litellm_knows_without_api_base(fx):
    # LiteLLM gives cerebras/, nvidia_nim/, deepinfra/, ... an endpoint (their *_API_BASE
    # variable first) and litellm_proxy/ its LITELLM_PROXY_API_BASE; a provider's key is read
    # from any of the variables LiteLLM knows for it. A config written for LiteLLM names
    # neither, and was left with nothing routed.
    m = fx.mock()
    text = ("model_list:\n"
            "  - model_name: llama-fast\n"
            "    litellm_params: { model: cerebras/llama3.1-8b }\n"
            "    model_info: { id: cerebras }\n"
            "  - model_name: upstream-gpt\n"
            "    litellm_params: { model: litellm_proxy/gpt-4o-mini }\n"
            "    model_info: { id: proxy }\n"
            "general_settings: { master_key: %s }\n" % MASTER_KEY)
    env = {"CEREBRAS_API_BASE": m.url, "CEREBRAS_API_KEY": MOCK_KEY,
           "LITELLM_PROXY_API_BASE": m.url, "LITELLM_PROXY_API_KEY": MOCK_KEY}
    r = checked(fx, text, 0, [
        "litellm.yaml:2: warning: model_list[0] (cerebras): no price known for "
        "cerebras/llama3.1-8b; its requests will cost 0. Set litellm_params.input_cost_per_token "
        "and output_cost_per_token",
        "litellm.yaml:5: warning: model_list[1] (proxy): no price known for "
        "litellm_proxy/gpt-4o-mini; its requests will cost 0. Set "
        "litellm_params.input_cost_per_token and output_cost_per_token",
    ], env=env)
    contains(r.out, "ok \u2014 2 deployments in 2 groups", "both routed")
    gw = fx.gateway(text, env=env)
    for alias, model in (("llama-fast", "llama3.1-8b"), ("upstream-gpt", "gpt-4o-mini")):
        r = chat(gw.port, chat_body(model=alias))
        eq(r.status, 200, "%s answers (%s)" % (alias, r.text))
        eq(m.last()["model"], model, "the model sent for %s" % alias)
        eq(m.last()["authorization"], "Bearer " + MOCK_KEY, "the key from the provider's variable")


def test_an_id_the_header_cannot_carry_is_replaced(fx):
    # LiteLLM takes any string as model_info.id ("azure gpt-4o eu"); the x-slogate-deployment
    # header cannot carry a space. The config loads (it was refused) and the deployment gets
    # the id slogate generates, which the warning names.
    m = fx.mock()
    text = ("model_list:\n"
            "  - model_name: gpt-4o\n"
            "    litellm_params: { model: openai/gpt-4o, api_base: %s, api_key: %s }\n"
            "    model_info:\n"
            "      id: \"azure gpt-4o eu\"\n"
            "general_settings: { master_key: %s }\n" % (m.url, MOCK_KEY, MASTER_KEY))
    r = check_config(fx, text)
    eq(r.code, 0, "check (%s)" % r)
    lines = diagnostics(fx, r)
    eq(len(lines), 1, "one warning (%s)" % lines)
    prefix = ("litellm.yaml:5: warning: model_list[0].model_info.id \"azure gpt-4o eu\" is not "
              "visible ASCII without spaces, which the x-slogate-deployment header needs: the "
              "deployment's id is ")
    check(lines[0].startswith(prefix) and lines[0].endswith(" instead"), lines[0])
    dep_id = lines[0][len(prefix):-len(" instead")]
    gw = fx.gateway(text)
    r = chat(gw.port, chat_body(model="gpt-4o"))
    eq(r.status, 200, "served (%s)" % r.text)
    eq(r.header("x-slogate-deployment"), dep_id, "the id the warning named")


def test_base_model_prices_the_deployment(fx):
    # LiteLLM's docs price an Azure deployment, whose name is its owner's, by
    # model_info.base_model; slogate does too (any deployment may say one). Without it the
    # deployment below would cost 0 and check would warn.
    m = fx.mock()
    text = ("model_list:\n"
            "  - model_name: app/chat\n"
            "    litellm_params: { model: openai/house-model, api_base: %s, api_key: %s }\n"
            "    model_info: { id: house, base_model: azure/gpt-4o-mini }\n"
            "general_settings: { master_key: %s }\n" % (m.url, MOCK_KEY, MASTER_KEY))
    checked(fx, text, 0, [])
    gw = fx.gateway(text)
    r = chat(gw.port, chat_body(model="app/chat"))
    eq(r.status, 200, "chat (%s)" % r.text)
    eq(m.last()["body"]["model"], "house-model", "the deployment's own model is called")
    u = r.json()["usage"]
    want = u["prompt_tokens"] * 0.15e-6 + u["completion_tokens"] * 0.60e-6  # gpt-4o-mini's
    check(want > 0 and abs(float(r.header("x-slogate-cost-usd")) - want) < 1e-8,
          "priced as gpt-4o-mini: %s, want %.8f" % (r.header("x-slogate-cost-usd"), want))


def test_organization_and_extra_headers_reach_the_provider(fx):
    # LiteLLM passes litellm_params.organization to the OpenAI client (OpenAI-Organization) and
    # sends extra_headers / headers with every call: OpenRouter's HTTP-Referer and X-Title, an
    # API manager's subscription key. Ignored, a deployment behind such a proxy would fail.
    m = fx.mock(name="prov")
    text = ("model_list:\n"
            "  - model_name: team-chat\n"
            "    litellm_params:\n"
            "      model: openai/gpt-4o-mini\n"
            "      api_base: %s\n"
            "      api_key: %s\n"
            "      organization: org-team42\n"
            "      extra_headers: { HTTP-Referer: https://app.example, X-Title: Team app,\n"
            "                       Ocp-Apim-Subscription-Key: os.environ/APIM_KEY }\n"
            "    model_info: { id: chat-main }\n"
            "  - model_name: team-claude\n"
            "    litellm_params:\n"
            "      model: anthropic/claude-3-5-haiku-latest\n"
            "      api_base: %s\n"
            "      api_key: %s\n"
            "      organization: org-team42\n"
            "      headers: { X-Title: Team app, Authorization: Bearer other }\n"
            "general_settings: { master_key: %s }\n"
            % (m.url, MOCK_KEY, root(m), MOCK_KEY, MASTER_KEY))
    env = {"APIM_KEY": "apim-secret"}
    checked(fx, text, 0, ["litellm.yaml:17: warning: model_list[1].litellm_params.headers."
                          "Authorization is ignored: the gateway sets Authorization itself from "
                          "api_key"], env=env)
    gw = fx.gateway(text, env=env)
    eq(chat(gw.port, chat_body(model="team-chat")).status, 200, "the OpenAI deployment answers")
    h = {k.lower(): v for k, v in m.last()["headers"].items()}
    eq(h.get("openai-organization"), "org-team42", "the organization")
    eq(h.get("http-referer"), "https://app.example", "an extra header")
    eq(h.get("x-title"), "Team app", "an extra header with a space")
    eq(h.get("ocp-apim-subscription-key"), "apim-secret", "an extra header from the environment")
    eq(h.get("authorization"), "Bearer " + MOCK_KEY, "the deployment's own key")
    eq(chat(gw.port, chat_body(model="team-claude")).status, 200, "the Anthropic deployment answers")
    h = {k.lower(): v for k, v in m.last()["headers"].items()}
    eq(h.get("x-title"), "Team app", "headers go to Anthropic deployments too")
    check("openai-organization" not in h, "no OpenAI organization at Anthropic: %r" % h)
    check("authorization" not in h and h.get("x-api-key") == MOCK_KEY,
          "the deployment's key, not the ignored header: %r" % h)
    # What check refuses, and says where.
    checked(fx, "model_list:\n"
                "  - model_name: a\n"
                "    litellm_params:\n"
                "      model: openai/gpt-4o-mini\n"
                "      api_key: k\n"
                "      extra_headers: [X-Title]\n"
                "  - model_name: b\n"
                "    litellm_params:\n"
                "      model: openai/gpt-4o-mini\n"
                "      api_key: k\n"
                "      headers: { 'X Title': t }\n"
                "  - model_name: c\n"
                "    litellm_params:\n"
                "      model: openai/gpt-4o-mini\n"
                "      api_key: k\n"
                "      headers: { \"X\\0B\": t }\n", 2,
            ["bad.yaml:6: error: model_list[0].litellm_params.extra_headers must be a mapping of "
             "header names to values",
             "bad.yaml:11: error: model_list[1].litellm_params.headers: 'X Title' is not an HTTP "
             "header name (letters, digits, - and _)",
             "bad.yaml:16: error: model_list[2].litellm_params.headers: a header name is a string "
             "without NUL bytes"], name="bad.yaml")
