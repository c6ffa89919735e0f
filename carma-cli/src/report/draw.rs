//! Figures in SVG with plotters: a title, a legend and a grid of panels. A bar panel has
//! categories along x (features, numbers of actions, settings), one bar per series in each,
//! optional error bars and horizontal reference lines; a curve panel has lines over epochs.

use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;

/// What drawing returns on failure (the SVG backend writes into a `String`, so this is rare).
pub type DrawError = DrawingAreaErrorKind<std::io::Error>;

/// A panel's usual width and height, pixels.
pub const PANEL: (u32, u32) = (660, 360);
/// Height of the title, of a subtitle line and of the legend, pixels.
const TITLE_H: u32 = 36;
const LINE_H: u32 = 22;
const LEGEND_H: u32 = 34;
/// The share of a category's width the bars of a group take (the rest separates groups).
const GROUP_WIDTH: f64 = 0.8;
/// Room above and below a curve panel's lines, as a fraction of their range.
const CURVE_PAD: f64 = 0.05;
/// Error bar caps, as a fraction of a bar's width.
const CAP_WIDTH: f64 = 0.6;
const FONT: &str = "sans-serif";
// Text sizes as plotters takes them (its SVG backend writes 1/1.24 of these as font-size).
const TITLE_PX: u32 = 24;
const TEXT_PX: u32 = 17;
const TICK_PX: u32 = 15;

/// One series: a colour and one value per category (`None`: no bar there).
#[derive(Debug, Clone)]
pub struct Series {
    /// Legend text.
    pub label: String,
    /// Fill of its bars (also its legend swatch).
    pub color: RGBColor,
    /// Per category, the bar's height.
    pub values: Vec<Option<f64>>,
    /// Per category, the error bar's half height (standard deviation), when there is one.
    pub errors: Option<Vec<Option<f64>>>,
}

/// A horizontal reference line (the oracle's cost, a target); the figure's legend names it.
#[derive(Debug, Clone, Copy)]
pub struct Line {
    /// Where it crosses the y axis.
    pub y: f64,
    /// Dashed (a target) or solid (a reference value).
    pub dashed: bool,
}

/// The colour of a solid reference line (the oracle's cost).
pub const REFERENCE_COLOR: RGBColor = RGBColor(0, 0, 0);
/// The colour of a dashed reference line (a target).
pub const TARGET_COLOR: RGBColor = RGBColor(0x66, 0x66, 0x66);

/// What a legend entry shows beside its text.
#[derive(Debug, Clone, Copy)]
pub enum Swatch {
    /// A bar's colour.
    Bar(RGBColor),
    /// A line, dashed or solid.
    Line {
        /// Its colour.
        color: RGBColor,
        /// Its width, pixels.
        width: u32,
        /// Dashed or solid.
        dashed: bool,
    },
}

/// One line of a curve panel.
#[derive(Debug, Clone)]
pub struct Curve {
    /// Its colour.
    pub color: RGBColor,
    /// Its width, pixels.
    pub width: u32,
    /// Its points, in x order.
    pub points: Vec<(f64, f64)>,
}

/// A chart of lines (training curves).
#[derive(Debug, Clone)]
pub struct Curves {
    /// Caption above the chart.
    pub caption: String,
    /// Text under the x axis.
    pub x_desc: String,
    /// Text beside the y axis.
    pub y_desc: String,
    /// The lines, drawn in order (the last on top).
    pub curves: Vec<Curve>,
}

/// A panel of a figure.
#[derive(Debug, Clone)]
pub enum Plot {
    /// Grouped bars.
    Bars(Panel),
    /// Lines.
    Curves(Curves),
}

/// A chart of grouped bars.
#[derive(Debug, Clone)]
pub struct Panel {
    /// Caption above the chart.
    pub caption: String,
    /// The x axis's categories, in order.
    pub categories: Vec<String>,
    /// Text under the x axis.
    pub x_desc: String,
    /// Text beside the y axis.
    pub y_desc: String,
    /// Top of the y axis (the bottom is 0).
    pub y_max: f64,
    /// Decimals of the y axis's labels.
    pub y_decimals: usize,
    /// The bars.
    pub series: Vec<Series>,
    /// Reference lines.
    pub lines: Vec<Line>,
}

/// A whole figure: a title, a line under it, the legend, then the panels `columns` wide.
#[derive(Debug, Clone)]
pub struct Chart {
    /// The title.
    pub title: String,
    /// Lines of explanation under the title.
    pub subtitle: Vec<String>,
    /// Legend entries: text and swatch.
    pub legend: Vec<(String, Swatch)>,
    /// The panels, row by row.
    pub panels: Vec<Plot>,
    /// Panels per row.
    pub columns: usize,
    /// Each panel's width and height, pixels.
    pub panel_size: (u32, u32),
}

/// The chart as an SVG document.
pub fn svg(chart: &Chart) -> Result<String, DrawError> {
    let columns = chart.columns.clamp(1, chart.panels.len().max(1));
    let rows = chart.panels.len().div_ceil(columns).max(1);
    let (w, h) = chart.panel_size;
    let header = TITLE_H + LINE_H * chart.subtitle.len() as u32 + LEGEND_H;
    let size = (w * columns as u32, header + h * rows as u32);
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, size).into_drawing_area();
        root.fill(&WHITE)?;
        let (top, body) = root.split_vertically(header);
        draw_header(&top, chart)?;
        let cells = body.split_evenly((rows, columns));
        for (cell, panel) in cells.iter().zip(&chart.panels) {
            match panel {
                Plot::Bars(p) => draw_panel(cell, p)?,
                Plot::Curves(c) => draw_curves(cell, c)?,
            }
        }
        root.present()?;
    }
    Ok(out)
}

fn draw_header(area: &DrawingArea<SVGBackend<'_>, Shift>, chart: &Chart) -> Result<(), DrawError> {
    let title = (FONT, TITLE_PX).into_font().color(&BLACK);
    let text = (FONT, TEXT_PX).into_font().color(&BLACK);
    area.draw(&Text::new(chart.title.clone(), (12, 10), title))?;
    let mut y = TITLE_H as i32 + 4;
    for line in &chart.subtitle {
        area.draw(&Text::new(line.clone(), (12, y), text.clone()))?;
        y += LINE_H as i32;
    }
    y += 4;
    let mut x = 12;
    for (label, swatch) in &chart.legend {
        match *swatch {
            Swatch::Bar(color) => {
                area.draw(&Rectangle::new([(x, y), (x + 14, y + 14)], color.filled()))?;
                x += 20;
            }
            Swatch::Line {
                color,
                width,
                dashed,
            } => {
                let points = [(x, y + 7), (x + 30, y + 7)];
                let style = color.stroke_width(width);
                if dashed {
                    area.draw(&DashedPathElement::new(points, 6, 4, style))?;
                } else {
                    area.draw(&PathElement::new(points, style))?;
                }
                x += 36;
            }
        }
        area.draw(&Text::new(label.clone(), (x, y), text.clone()))?;
        // The SVG backend cannot measure text; about 0.5 em per character is enough room.
        x += (label.chars().count() as i32 * TEXT_PX as i32) / 2 + 28;
    }
    Ok(())
}

fn solid_style() -> ShapeStyle {
    REFERENCE_COLOR.stroke_width(2)
}

fn dashed_style() -> ShapeStyle {
    TARGET_COLOR.stroke_width(2)
}

fn draw_panel(area: &DrawingArea<SVGBackend<'_>, Shift>, panel: &Panel) -> Result<(), DrawError> {
    let n = panel.categories.len().max(1);
    // Category i spans i - 0.5 to i + 0.5, so the axis's key points (whole numbers: n of them
    // fit the hint of n labels) fall on the categories' centres.
    let (x_lo, x_hi) = (-0.5, n as f64 - 0.5);
    let mut chart = ChartBuilder::on(area)
        .caption(&panel.caption, (FONT, TEXT_PX + 2))
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(56)
        .build_cartesian_2d(x_lo..x_hi, 0.0..panel.y_max)?;
    let categories = &panel.categories;
    let label_of = |x: &f64| {
        let i = x.round();
        if (x - i).abs() < 1e-6 && i >= 0.0 {
            categories.get(i as usize).cloned().unwrap_or_default()
        } else {
            String::new()
        }
    };
    let decimals = panel.y_decimals;
    let y_label = |y: &f64| format!("{y:.decimals$}");
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(n)
        .x_label_formatter(&label_of)
        .y_label_formatter(&y_label)
        .x_desc(&panel.x_desc)
        .y_desc(&panel.y_desc)
        .label_style((FONT, TICK_PX))
        .axis_desc_style((FONT, TICK_PX + 1))
        .max_light_lines(0)
        .draw()?;
    let m = panel.series.len().max(1) as f64;
    let width = GROUP_WIDTH / m;
    let left = |category: usize, j: usize| category as f64 - GROUP_WIDTH / 2.0 + j as f64 * width;
    for (j, series) in panel.series.iter().enumerate() {
        chart.draw_series(series.values.iter().enumerate().filter_map(|(i, v)| {
            v.map(|v| {
                let x0 = left(i, j);
                Rectangle::new(
                    [(x0, 0.0), (x0 + width, v.clamp(0.0, panel.y_max))],
                    series.color.filled(),
                )
            })
        }))?;
    }
    for (j, series) in panel.series.iter().enumerate() {
        let Some(errors) = &series.errors else {
            continue;
        };
        for (i, (v, e)) in series.values.iter().zip(errors).enumerate() {
            let (Some(v), Some(e)) = (v, e) else { continue };
            let x = left(i, j) + width / 2.0;
            let (lo, hi) = ((v - e).max(0.0), (v + e).min(panel.y_max));
            let cap = width * CAP_WIDTH / 2.0;
            chart.draw_series([
                PathElement::new(vec![(x, lo), (x, hi)], BLACK),
                PathElement::new(vec![(x - cap, lo), (x + cap, lo)], BLACK),
                PathElement::new(vec![(x - cap, hi), (x + cap, hi)], BLACK),
            ])?;
        }
    }
    for line in &panel.lines {
        let points = [(x_lo, line.y), (x_hi, line.y)];
        if line.dashed {
            chart.draw_series(std::iter::once(DashedPathElement::new(
                points,
                6,
                4,
                dashed_style(),
            )))?;
        } else {
            chart.draw_series(std::iter::once(PathElement::new(points, solid_style())))?;
        }
    }
    Ok(())
}

fn draw_curves(area: &DrawingArea<SVGBackend<'_>, Shift>, panel: &Curves) -> Result<(), DrawError> {
    let points = || panel.curves.iter().flat_map(|c| c.points.iter());
    let x_max = points().map(|p| p.0).fold(1.0, f64::max);
    let (lo, hi) = points().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), p| {
        (lo.min(p.1), hi.max(p.1))
    });
    let (lo, hi) = if lo.is_finite() && hi.is_finite() {
        (lo, hi)
    } else {
        (0.0, 1.0)
    };
    // A flat curve still gets an axis of some height.
    let pad = if hi > lo {
        (hi - lo) * CURVE_PAD
    } else {
        lo.abs().max(1.0) * CURVE_PAD
    };
    let mut chart = ChartBuilder::on(area)
        .caption(&panel.caption, (FONT, TEXT_PX + 2))
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(64)
        .build_cartesian_2d(1.0..x_max.max(2.0), (lo - pad)..(hi + pad))?;
    chart
        .configure_mesh()
        .x_desc(&panel.x_desc)
        .y_desc(&panel.y_desc)
        .x_label_formatter(&|x| format!("{x:.0}"))
        .label_style((FONT, TICK_PX))
        .axis_desc_style((FONT, TICK_PX + 1))
        .max_light_lines(0)
        .draw()?;
    for c in &panel.curves {
        chart.draw_series(std::iter::once(PathElement::new(
            c.points.clone(),
            c.color.stroke_width(c.width),
        )))?;
    }
    Ok(())
}
