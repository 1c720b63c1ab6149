"""Single- and multi-agent systems on the smart home, with request cascading (arXiv 2505.18286).

"Single-agent or Multi-agent Systems? Why Not Both": a multi-agent system (MAS) is more accurate on
hard tasks and far more expensive; a single agent (SAS) is enough for easy ones.  Here:

- :mod:`~cloud.agents.loop` and :mod:`~cloud.agents.state`: one agent's tool-calling loop over the
  house's tools (:mod:`edgeweave.home`), a typed checkpoint per step, budgets (max steps, tokens);
- :mod:`~cloud.agents.runtime`: SAS; MAS (planner -> executors -> verifier); routing; the cascade
  (SAS first, MAS when the gate says); the cascade with the upgrade of the error-prone agent;
- :mod:`~cloud.agents.record`: a run as the paper's dependency graph (networkx) of agents and messages;
- :mod:`~cloud.agents.policy`: confidence-guided tracing along the critical path, and the
  difficulty router (scikit-learn);
- :mod:`~cloud.agents.chat`: an agent's model, any OpenAI-compatible endpoint (the coordinator
  places it on a device or the cloud), read back with its token log-probabilities.

The paper's mechanisms here: the dependency graph, confidence-guided tracing with the upgrade of
only the traced agent, routing and cascading.  Our choices: confidence is an agent's least
confident turn's mean token probability (the paper leaves the measure open; the Inv-Entropy scores
need sampled answers, too dear per agent step); the cascade escalates on the verifier's rejection,
an error, or low confidence, because the exact checker needs the goal, which a live request does not
carry; the critical path is read from which devices each agent's calls addressed.  The agents'
models are the weave-agent models trained here for the roles (:mod:`edgeweave.home.role_corpus`);
any OpenAI-compatible endpoint serves as an agent's model.
"""
