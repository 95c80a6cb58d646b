"""Build of keywire's one C extension; all package metadata lives in pyproject.toml.

`keywire.agent._cfrontend` is the microfrontend's integer arithmetic in portable C99
(agent/native/frontend.c), bit-exact with the numpy code in agent/frontend/, which stays
the reference and the fallback when the extension is not there.
"""
from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "keywire.agent._cfrontend",
            sources=["agent/native/frontend.c"],
            extra_compile_args=["-O2"],
            libraries=["m"],   # sqrt, floor
        )
    ]
)
