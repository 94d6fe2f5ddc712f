"""The deploy's stages, each a module that deploy.py orders; everything else in operations/ is
the machinery they share (facts and parsers, checks, data tables, rendering, rollout).

Workers: preflight (1), system_packages (2), weights (3), python_env (4), service (5),
health (6). Wheelhouse hosts: wheelhouse. Gateways: gateway.
"""
