"""Human-readable renderings of a diagnosis: the HTML report page, its SVG chart, a PNG."""
