// The page's own drawings (static SVG, never built from data).

export const ICONS = {
  speaker:
    '<svg viewBox="0 0 24 24" width="22" height="22" aria-hidden="true"><path d="M4 9h4l5-4v14l-5-4H4z" fill="currentColor"/><path d="M16 8.5a5 5 0 0 1 0 7M18.5 6a8.5 8.5 0 0 1 0 12" fill="none" stroke="currentColor" stroke-width="2" stroke-linecap="round"/></svg>',
  stop: '<svg viewBox="0 0 24 24" width="22" height="22" aria-hidden="true"><rect x="6" y="6" width="12" height="12" rx="2.5" fill="currentColor"/></svg>',
  drawing: `<svg class="drawing-art" viewBox="0 0 160 120" aria-hidden="true">
      <rect x="18" y="12" width="124" height="90" rx="12" fill="#fffdf8" stroke="#ecd6b8" stroke-width="3"/>
      <path class="ink ink-1" d="M28 88 C 48 62, 64 92, 86 70 S 120 56, 132 66" stroke="#8cc084" stroke-width="7"/>
      <circle class="ink ink-2" cx="110" cy="36" r="11" stroke="#f6c453" stroke-width="7"/>
      <path class="ink ink-3" d="M34 40 q 10 -10 20 0 q 10 -10 20 0" stroke="#7fb7e0" stroke-width="6"/>
      <g class="pencil"><path d="M0 0 l 8 -8 l 30 30 l -8 8 z" fill="#f29e6d"/><path d="M0 0 l 8 -8 l -12 -4 z" fill="#ffe2b8"/><path d="M30 30 l 8 -8 l 4 4 l -8 8 z" fill="#d9607e"/></g>
    </svg>`,
  waiting: `<svg class="waiting-art" viewBox="0 0 160 120" aria-hidden="true">
      <rect x="18" y="12" width="124" height="90" rx="12" fill="#fffdf8" stroke="#ecd6b8" stroke-width="3" stroke-dasharray="8 8"/>
      <circle cx="60" cy="58" r="6" fill="#f6c453"/><circle cx="80" cy="58" r="6" fill="#f29e6d"/><circle cx="100" cy="58" r="6" fill="#7fb7e0"/>
    </svg>`,
  broken: `<svg class="broken-art" viewBox="0 0 160 120" aria-hidden="true">
      <rect x="18" y="12" width="124" height="90" rx="12" fill="#fffdf8" stroke="#ecd6b8" stroke-width="3"/>
      <path d="M40 84 l 22 -26 l 16 18 l 12 -12 l 26 20" fill="none" stroke="#d8c3a5" stroke-width="6" stroke-linecap="round" stroke-linejoin="round"/>
      <circle cx="110" cy="38" r="9" fill="#f3d9b3"/>
      <path d="M62 30 q 8 -8 16 0" fill="none" stroke="#d9607e" stroke-width="4" stroke-linecap="round"/>
    </svg>`,
};
