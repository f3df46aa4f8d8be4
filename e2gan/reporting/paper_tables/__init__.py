"""The paper's tables, one small builder per table (like a study spec); the registry maps a
study's kind to its builders."""
