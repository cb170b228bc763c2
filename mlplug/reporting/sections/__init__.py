"""The builtin report sections. They are registered by :mod:`mlplug.builtin.report_sections`
through the same hook as any plugin's section."""
